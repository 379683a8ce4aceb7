"""``genstudio check``: every setting with its value and source, and the
contradictions that would make a deployment misbehave, refused.

Which variables exist is learnt from the settings themselves, not from a list kept
here: ``Settings.from_env`` is run on a mapping that records every name it reads.
Which field a variable sets is found the same way: the settings are built again
without it (when it is set) or with a trial value (when it is not), and the fields
that change are its fields. So a setting added tomorrow is printed without touching
this file.

Secrets are never printed: a variable whose name says it holds one (``SECRET``,
``PASSWORD``, ``PRIVATE``, ``TOKEN``, ``_KEY``, ``GOOGLE_SERVICE_ACCOUNT``) shows
``****``, and a URL's password is masked.

Exit status: 0 when nothing contradicts (warnings are printed, not refused), 1 when a
contradiction or a value that does not parse was found, each naming its variables.
"""

from __future__ import annotations

import enum
import json
import re
import sys
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO, TypeVar, overload

import msgspec

from genstudio.entrypoints.settings import Settings
from genstudio.entrypoints.storage import storage_name

_T = TypeVar("_T")

#: values tried on a variable that is not set, to find the fields it would set
_TRIALS = (
    "7",
    "1",
    "true",
    "0",
    "false",
    "0.5",
    "200",
    "1024",
    "off",
    "json",
    "x",
    "7/7",
    "http://x",
)
#: trials for variables that hold a list of pairs: their default is shown as such
_LIST_TRIALS = ("a=b", "sexual=0.5")
_SECRET_WORDS = ("SECRET", "PASSWORD", "PRIVATE", "TOKEN", "_KEY")
_SECRET_NAMES = frozenset({"GOOGLE_SERVICE_ACCOUNT"})
#: Supavisor's (and Supabase's older PgBouncer's) transaction-mode port
TRANSACTION_POOLER_PORT = 6543


class _Recording(dict[str, str]):
    """An environment that remembers every name read from it, in order."""

    def __init__(self, env: Mapping[str, str]) -> None:
        super().__init__(env)
        self.read: dict[str, None] = {}

    @overload
    def get(self, key: str, default: None = None, /) -> str | None: ...

    @overload
    def get(self, key: str, default: str, /) -> str: ...

    @overload
    def get(self, key: str, default: _T, /) -> str | _T: ...

    def get(self, key: str, default: object = None, /) -> object:
        self.read.setdefault(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.setdefault(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.setdefault(key)
        return super().__contains__(key)


class Level(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Problem(msgspec.Struct, frozen=True):
    level: Level
    variables: tuple[str, ...]
    message: str


class Line(msgspec.Struct, frozen=True, kw_only=True):
    variable: str
    group: str  # the Settings field it belongs to ("" when none was found)
    fields: tuple[str, ...]  # "group.field" it sets
    value: str  # as shown: masked where secret
    source: str  # "environment" or "default"


# -- what is set, and from where ---------------------------------------------------------


def is_secret(name: str) -> bool:
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def masked(name: str, value: str) -> str:
    """The value as it may be printed: secrets as ``****``, a URL's password masked."""
    if is_secret(name):
        return "****"
    try:
        parts = urllib.parse.urlsplit(value)
    except ValueError:
        return value
    if parts.password:
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        value = urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:****@{host}"))
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1****", value)


def _flatten(value: Any, path: str, out: dict[str, Any]) -> None:
    if isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(type(value)):
            _flatten(getattr(value, field.name), f"{path}.{field.name}", out)
    elif isinstance(value, dict):  # an empty one has no leaves: a key set is a new leaf
        for key, item in value.items():
            _flatten(item, f"{path}.{getattr(key, 'value', key)}", out)
    else:
        out[path] = value


def _fields(settings: Settings) -> dict[str, Any]:
    """Every leaf of the settings by its path (``jobs.job_timeouts.video``)."""
    values: dict[str, Any] = {}
    for group in msgspec.structs.fields(Settings):
        _flatten(getattr(settings, group.name), group.name, values)
    return values


_ABSENT = object()


def _changed(base: dict[str, Any], env: dict[str, str]) -> tuple[str, ...]:
    try:
        other = _fields(Settings.from_env(env))
    except (SystemExit, ValueError):
        return ()
    paths = dict.fromkeys([*base, *other])
    return tuple(p for p in paths if base.get(p, _ABSENT) != other.get(p, _ABSENT))


def _scalar(value: Any) -> str:
    if value is None or value is _ABSENT:
        return "unset"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _shown_default(base: dict[str, Any], paths: tuple[str, ...]) -> str:
    if not paths:
        return "(default)"
    if len(paths) == 1:
        return _scalar(base.get(paths[0], _ABSENT))
    leaves = [f"{p.rpartition('.')[2]}={_scalar(base.get(p, _ABSENT))}" for p in paths]
    return ", ".join(leaves) if len(leaves) <= 4 else "(default)"


def _fields_of(
    base: dict[str, Any], env: dict[str, str], name: str
) -> tuple[tuple[str, ...], bool]:
    """The settings' paths a variable sets: those that move when it is taken away, or
    (set to its default, or not set) when it is given a trial value; and whether it
    holds a list of pairs (whose default is not one value)."""
    if env.get(name, "").strip():
        paths = _changed(base, {k: v for k, v in env.items() if k != name})
        if paths:
            return paths, False
    for trial in (*_TRIALS, *_LIST_TRIALS):
        paths = _changed(base, {**env, name: trial})
        if paths:
            return paths, trial in _LIST_TRIALS
    return (), False


def describe(env: Mapping[str, str]) -> list[Line]:
    """Every variable the settings read, with its value (masked) and source. Raises
    SystemExit or ValueError, naming the variable, where a value does not parse."""
    recording = _Recording(env)
    base = _fields(Settings.from_env(recording))
    plain = dict(env)
    lines = []
    for name in recording.read:
        paths, pairs = _fields_of(base, plain, name)
        if plain.get(name, "").strip():
            value, source = masked(name, plain[name].strip()), "environment"
        else:
            value = "(built-in list)" if pairs else _shown_default(base, paths)
            source = "default"
        group = paths[0].partition(".")[0] if paths else ""
        lines.append(Line(variable=name, group=group, fields=paths, value=value, source=source))
    return lines


# -- contradictions -----------------------------------------------------------------------


def _set(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name, "").strip())


def _missing(env: Mapping[str, str], *names: str) -> list[str]:
    return [n for n in names if not _set(env, n)]


class _Found(list[Problem]):
    def error(self, message: str, *names: str) -> None:
        self.append(Problem(Level.ERROR, names, message))

    def warning(self, message: str, *names: str) -> None:
        self.append(Problem(Level.WARNING, names, message))


def problems(settings: Settings, env: Mapping[str, str]) -> list[Problem]:
    """What contradicts: errors (a process would fail, or silently do something else
    than the settings say) and warnings (likely mistakes that can be deliberate)."""
    found = _Found()
    production = settings.database.url is not None
    _database(settings, production, found)
    _supabase(settings, env, production, found)
    _apple(settings, env, found)
    _google(env, found)
    _providers(settings, env, found)
    _classifier(settings, found)
    return list(found)


def _database(settings: Settings, production: bool, found: _Found) -> None:
    if production and not (settings.supabase.jwt_secret or settings.supabase.jwks_url):
        found.error(
            "DATABASE_URL is set (production) but tokens cannot be verified: set "
            "SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL",
            "DATABASE_URL",
            "SUPABASE_JWT_SECRET",
            "SUPABASE_JWKS_URL",
        )
    url = settings.database.url
    if url is not None and settings.database.prepared:
        try:
            port = urllib.parse.urlsplit(url).port
        except ValueError:
            port = None
        if port == TRANSACTION_POOLER_PORT:
            found.error(
                f"DATABASE_URL names port {TRANSACTION_POOLER_PORT}, Supavisor's transaction "
                "mode, where a prepared statement may meet another client's connection: "
                "set GENSTUDIO_DB_PREPARED=off (or use the session pooler, port 5432)",
                "DATABASE_URL",
                "GENSTUDIO_DB_PREPARED",
            )
    if settings.redis.url and not production:
        found.warning(
            "REDIS_URL without DATABASE_URL: the database is the embedded one on this "
            "machine (a Unix socket under GENSTUDIO_DATA_DIR), so every worker must run "
            "here with the same data directory",
            "REDIS_URL",
            "DATABASE_URL",
        )


def _supabase(settings: Settings, env: Mapping[str, str], production: bool, found: _Found) -> None:
    supabase, server = settings.supabase, settings.server
    if supabase.service_key and not supabase.url:
        found.error(
            "SUPABASE_SERVICE_KEY is set without SUPABASE_URL: Supabase Storage and Auth's "
            "admin API need both; media would go to local files",
            "SUPABASE_SERVICE_KEY",
            "SUPABASE_URL",
        )
    if _set(env, "SUPABASE_STORAGE_BUCKET") and not supabase.storage:
        found.error(
            "SUPABASE_STORAGE_BUCKET asks for Supabase Storage, which needs "
            f"{' and '.join(_missing(env, 'SUPABASE_URL', 'SUPABASE_SERVICE_KEY') or ['both'])}"
            "; without them media go to local files",
            "SUPABASE_STORAGE_BUCKET",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_KEY",
        )
    if production and supabase.url and not supabase.service_key:
        found.warning(
            "SUPABASE_URL without SUPABASE_SERVICE_KEY: media go to local files under "
            "GENSTUDIO_DATA_DIR, not Supabase Storage, and deleting an account cannot end "
            "its sessions",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_KEY",
        )
    if production and supabase.jwt_secret and supabase.token_issuer is None:
        found.warning(
            "tokens' issuer is not checked: set SUPABASE_JWT_ISSUER or SUPABASE_URL",
            "SUPABASE_JWT_ISSUER",
            "SUPABASE_URL",
        )
    if production and storage_name(settings) == "local":  # MEDIA_STORAGE may say otherwise
        found.warning(
            "media are local files under GENSTUDIO_DATA_DIR/media: every API and worker "
            "process must share that directory (and GENSTUDIO_MEDIA_SECRET), or use "
            "Supabase Storage (SUPABASE_URL, SUPABASE_SERVICE_KEY)",
            "GENSTUDIO_DATA_DIR",
            "SUPABASE_URL",
            "SUPABASE_SERVICE_KEY",
        )
        if server.public_url is None:
            found.warning(
                f"signed media URLs point at {server.base_url}: set GENSTUDIO_PUBLIC_URL to "
                "the address the app reaches",
                "GENSTUDIO_PUBLIC_URL",
            )


#: APPLE_* / GOOGLE_* variables that do not ask for the store's purchases
_CATALOG_ONLY = frozenset({"APPLE_PRODUCT_IDS", "GOOGLE_PRODUCT_IDS"})


def _apple(settings: Settings, env: Mapping[str, str], found: _Found) -> None:
    apple = settings.apple
    named = sorted(
        n for n in env if n.startswith("APPLE_") and n not in _CATALOG_ONLY and _set(env, n)
    )
    if apple.environment not in ("Production", "Sandbox"):
        found.error(
            f"APPLE_ENVIRONMENT must be Production or Sandbox, not {apple.environment!r}",
            "APPLE_ENVIRONMENT",
        )
    if apple.sandbox_in_production not in ("grant", "refuse"):
        found.error(
            "APPLE_SANDBOX_IN_PRODUCTION must be grant or refuse, not "
            f"{apple.sandbox_in_production!r}",
            "APPLE_SANDBOX_IN_PRODUCTION",
        )
    if not named:
        return  # Apple purchases off, and nothing asks for them
    needed = ["APPLE_ROOT_CERTIFICATES", "APPLE_BUNDLE_ID"]
    if apple.environment == "Production":
        needed.append("APPLE_APP_APPLE_ID")
    missing = _missing(env, *needed)
    if missing:
        found.error(
            f"Apple purchases are configured ({', '.join(named)}) in {apple.environment} "
            f"but {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing"
            + (
                " (Apple's verifier needs the app's Apple ID in Production)"
                if "APPLE_APP_APPLE_ID" in missing
                else ""
            ),
            *missing,
        )
    api = ("APPLE_PRIVATE_KEY", "APPLE_KEY_ID", "APPLE_ISSUER_ID")
    if 0 < len(_missing(env, *api)) < len(api):
        found.error(
            "the App Store Server API needs APPLE_PRIVATE_KEY, APPLE_KEY_ID and "
            f"APPLE_ISSUER_ID together; missing: {', '.join(_missing(env, *api))}",
            *api,
        )
    if apple.root_certificates:
        from genstudio.adapters.iap_apple.store import load_root_certificates

        try:
            load_root_certificates(apple.root_certificates)
        except (OSError, ValueError) as exc:
            found.error(str(exc), "APPLE_ROOT_CERTIFICATES")


def _google(env: Mapping[str, str], found: _Found) -> None:
    named = sorted(
        n for n in env if n.startswith("GOOGLE_") and n not in _CATALOG_ONLY and _set(env, n)
    )
    if not named:
        return
    missing = _missing(env, "GOOGLE_PACKAGE_NAME", "GOOGLE_SERVICE_ACCOUNT")
    if missing:
        found.error(
            f"Google Play purchases are configured ({', '.join(named)}) but "
            f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} missing",
            *missing,
        )
    push = ("GOOGLE_PUBSUB_AUDIENCE", "GOOGLE_PUBSUB_SERVICE_ACCOUNT")
    if len(_missing(env, *push)) == 1:
        found.error(
            "verifying Play's notifications (RTDN) needs GOOGLE_PUBSUB_AUDIENCE and "
            f"GOOGLE_PUBSUB_SERVICE_ACCOUNT together; missing: {_missing(env, *push)[0]}",
            *push,
        )
    account = env.get("GOOGLE_SERVICE_ACCOUNT", "").strip()
    if account:
        try:
            path = Path(account)
            text = path.read_text() if len(account) < 1024 and path.is_file() else account
            info = json.loads(text)
        except (OSError, ValueError):
            info = None
        if not isinstance(info, dict) or "private_key" not in info:
            found.error(
                "GOOGLE_SERVICE_ACCOUNT is neither a service-account JSON key nor a file "
                "holding one",
                "GOOGLE_SERVICE_ACCOUNT",
            )


def _providers(settings: Settings, env: Mapping[str, str], found: _Found) -> None:
    modal = ("MODAL_BASE_URL", "MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET")
    if 0 < len(_missing(env, *modal)) < len(modal):
        found.error(
            "Modal needs MODAL_BASE_URL, MODAL_TOKEN_ID and MODAL_TOKEN_SECRET together; "
            f"missing: {', '.join(_missing(env, *modal))}",
            *modal,
        )
    runpod = ("RUNPOD_API_KEY", "RUNPOD_ENDPOINTS")
    if len(_missing(env, *runpod)) == 1:
        found.error(
            "Runpod needs RUNPOD_API_KEY and RUNPOD_ENDPOINTS together; missing: "
            f"{_missing(env, *runpod)[0]}",
            *runpod,
        )
    if settings.runpod.webhook_secret and settings.server.public_url is None:
        found.error(
            "RUNPOD_WEBHOOK_SECRET turns Runpod's webhooks on, but without "
            f"GENSTUDIO_PUBLIC_URL Runpod would be told to call {settings.server.base_url}",
            "RUNPOD_WEBHOOK_SECRET",
            "GENSTUDIO_PUBLIC_URL",
        )
    for prefix, key in (("OPENROUTER_", "OPENROUTER_API_KEY"), ("OPENAI_", "OPENAI_API_KEY")):
        others = sorted(n for n in env if n.startswith(prefix) and n != key and _set(env, n))
        if others and not _set(env, key):
            found.warning(
                f"{', '.join(others)} {'has' if len(others) == 1 else 'have'} no effect without {key}",
                *others,
                key,
            )


def _classifier(settings: Settings, found: _Found) -> None:
    m = settings.moderation
    if m.classifier_url is None:
        return
    if m.images == "off":
        found.warning(
            "GENSTUDIO_CLASSIFIER_URL has no effect with GENSTUDIO_MODERATION_IMAGES=off "
            "(images are not classified)",
            "GENSTUDIO_CLASSIFIER_URL",
            "GENSTUDIO_MODERATION_IMAGES",
        )
    host = urllib.parse.urlsplit(m.classifier_url).hostname or ""
    if m.classifier_token is None and host not in ("127.0.0.1", "localhost", "::1"):
        found.warning(
            f"users' images go to {host} without a token: set GENSTUDIO_CLASSIFIER_TOKEN "
            "here and on `genstudio classifier` unless that network is private",
            "GENSTUDIO_CLASSIFIER_URL",
            "GENSTUDIO_CLASSIFIER_TOKEN",
        )


# -- the command ----------------------------------------------------------------------------


def render(lines: list[Line], found: list[Problem], out: TextIO, *, quiet: bool = False) -> None:
    if not quiet:
        order = [f.name for f in msgspec.structs.fields(Settings)] + [""]
        width = max((len(line.variable) for line in lines), default=0)
        for group in order:
            members = [line for line in lines if line.group == group]
            if not members:
                continue
            out.write(f"[{group or 'other'}]\n")
            for line in members:
                out.write(f"  {line.variable:<{width}}  {line.value}  ({line.source})\n")
    for problem in found:
        out.write(f"{problem.level}: {problem.message} [{', '.join(problem.variables)}]\n")
    errors = sum(1 for p in found if p.level is Level.ERROR)
    if not quiet or found:
        out.write(
            f"configuration refused: {errors} contradiction{'s' if errors != 1 else ''}\n"
            if errors
            else "configuration ok\n"
        )


def run(env: Mapping[str, str], out: TextIO = sys.stdout, *, quiet: bool = False) -> int:
    """Print the settings and their problems; the exit status (0 ok, 1 refused)."""
    try:
        lines = [] if quiet else describe(env)
        settings = Settings.from_env(dict(env))
    except (SystemExit, ValueError) as exc:
        out.write(f"error: {exc}\nconfiguration refused: a value does not parse\n")
        return 1
    found = problems(settings, env)
    render(lines, found, out, quiet=quiet)
    return 1 if any(p.level is Level.ERROR for p in found) else 0
