"""Typed settings from the environment. Nothing else reads os.environ.

One frozen group per environment prefix (``DATABASE_URL``/``GENSTUDIO_DB_*``,
``SUPABASE_*``, ``RUNPOD_*``, ...), each with a ``from_env`` that reads only its own
variables; ``Settings`` composes them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import msgspec

from genstudio.entrypoints.iap_settings import (
    AppleSettings,
    GoogleSettings,
    apple_from_env,
    google_from_env,
)
from genstudio.entrypoints.limits_settings import RateSettings, rate_settings_from_env
from genstudio.entrypoints.realtime_settings import RealtimeSettings, realtime_settings_from_env
from genstudio.entrypoints.safety_settings import SafetySettings, safety_settings_from_env
from genstudio.entrypoints.settings.adapters import AdapterSettings
from genstudio.entrypoints.settings.analytics import PostHogSettings
from genstudio.entrypoints.settings.database import DatabaseSettings, RedisSettings
from genstudio.entrypoints.settings.jobs import JobSettings
from genstudio.entrypoints.settings.moderation import ModerationSettings
from genstudio.entrypoints.settings.observability import ObservabilitySettings
from genstudio.entrypoints.settings.providers import (
    ModalSettings,
    OpenRouterSettings,
    RunpodSettings,
)
from genstudio.entrypoints.settings.push import ExpoSettings, NotifySettings
from genstudio.entrypoints.settings.server import ServerSettings
from genstudio.entrypoints.settings.supabase import SupabaseSettings
from genstudio.entrypoints.training_settings import PhotoSettings, photo_settings_from_env

__all__ = [
    "AdapterSettings",
    "DatabaseSettings",
    "ExpoSettings",
    "JobSettings",
    "ModalSettings",
    "ModerationSettings",
    "NotifySettings",
    "ObservabilitySettings",
    "OpenRouterSettings",
    "PostHogSettings",
    "RedisSettings",
    "RunpodSettings",
    "ServerSettings",
    "Settings",
    "SupabaseSettings",
    "kept_secret",
    "resolve_secrets",
]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)  # REDIS_URL
    supabase: SupabaseSettings = msgspec.field(default_factory=SupabaseSettings)
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    jobs: JobSettings = msgspec.field(default_factory=JobSettings)
    openrouter: OpenRouterSettings = msgspec.field(default_factory=OpenRouterSettings)
    runpod: RunpodSettings = msgspec.field(default_factory=RunpodSettings)
    modal: ModalSettings = msgspec.field(default_factory=ModalSettings)
    posthog: PostHogSettings = msgspec.field(default_factory=PostHogSettings)  # issue #20
    expo: ExpoSettings = msgspec.field(default_factory=ExpoSettings)
    notify: NotifySettings = msgspec.field(default_factory=NotifySettings)
    apple: AppleSettings = msgspec.field(default_factory=AppleSettings)  # APPLE_*
    google: GoogleSettings = msgspec.field(default_factory=GoogleSettings)  # GOOGLE_*
    photos: PhotoSettings = msgspec.field(default_factory=PhotoSettings)  # GENSTUDIO_PHOTO_*
    rate: RateSettings = msgspec.field(default_factory=RateSettings)  # GENSTUDIO_RATE_*
    # GENSTUDIO_REALTIME_*
    realtime: RealtimeSettings = msgspec.field(default_factory=RealtimeSettings)
    safety: SafetySettings = msgspec.field(default_factory=SafetySettings)  # GENSTUDIO_REPORTS_*
    # GENSTUDIO_MODERATION_*, OPENAI_* (issue #19)
    moderation: ModerationSettings = msgspec.field(default_factory=ModerationSettings)
    # SENTRY_*, PROMETHEUS_MULTIPROC_DIR (issue #20)
    observability: ObservabilitySettings = msgspec.field(default_factory=ObservabilitySettings)
    # GPU_PROVIDERS, MEDIA_STORAGE and the <NAME>_* variables of the adapters they name
    # (issue #23)
    adapters: AdapterSettings = msgspec.field(default_factory=AdapterSettings)

    @property
    def embedded(self) -> bool:
        """No DATABASE_URL: run on an embedded PostgreSQL under the data directory."""
        return self.database.url is None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        # a caller's own mapping is read as given (``genstudio check`` records what is read)
        e = dict(os.environ) if env is None else env
        return cls(
            database=DatabaseSettings.from_env(e),
            redis=RedisSettings.from_env(e),
            supabase=SupabaseSettings.from_env(e),
            server=ServerSettings.from_env(e),
            jobs=JobSettings.from_env(e),
            openrouter=OpenRouterSettings.from_env(e),
            runpod=RunpodSettings.from_env(e),
            modal=ModalSettings.from_env(e),
            posthog=PostHogSettings.from_env(e),
            expo=ExpoSettings.from_env(e),
            notify=NotifySettings.from_env(e),
            apple=apple_from_env(e),
            google=google_from_env(e),
            photos=photo_settings_from_env(e),
            rate=rate_settings_from_env(e),
            realtime=realtime_settings_from_env(e),
            safety=safety_settings_from_env(e),
            moderation=ModerationSettings.from_env(e),
            observability=ObservabilitySettings.from_env(e),
            adapters=AdapterSettings.from_env(e),
        )


def kept_secret(data_dir: Path, name: str) -> str:
    """A random secret generated once and kept in the data directory (mode 0600).

    Processes starting together (``serve`` and a ``worker`` on one data dir) agree on
    one secret: each writes its candidate to a file of its own and links it into
    place, which only the first can do; the others read the winner's, never a
    half-written file.
    """
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    candidate = data_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value)
            f.flush()
            os.fsync(f.fileno())
        os.link(candidate, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        candidate.unlink(missing_ok=True)
    return value


def resolve_secrets(settings: Settings) -> Settings:
    """Fill in the JWT and media secrets: from the environment, else kept in the data dir.

    With a DATABASE_URL (production) the JWT secret or a JWKS URL must be given:
    a generated secret would make every real user's token invalid.
    """
    supabase, server = settings.supabase, settings.server
    jwt_secret = supabase.jwt_secret
    if jwt_secret is None and supabase.jwks_url is None:
        if not settings.embedded:
            raise SystemExit(
                "SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL is required when DATABASE_URL is set"
            )
        jwt_secret = kept_secret(server.data_dir, "jwt_secret")
    media_secret = server.media_secret or kept_secret(server.data_dir, "media_secret")
    return msgspec.structs.replace(
        settings,
        supabase=msgspec.structs.replace(supabase, jwt_secret=jwt_secret),
        server=msgspec.structs.replace(server, media_secret=media_secret),
    )
