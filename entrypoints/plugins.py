"""Adapters found by name (issue #23): a deployment's GPU providers and media storage
come from installed packages' entry points, so adding one is installing a package,
not editing genstudio.

Two entry-point groups, each mapping a name to a factory::

    genstudio.gpu_providers   name -> factory(settings, env) -> GpuProvider
    genstudio.media_storage   name -> factory(settings, env) -> MediaStorage

``settings`` is the process's ``Settings``; ``env`` holds the environment variables
named for the adapter, ``<NAME>_*`` (``FAL_KEY`` for ``fal``, ``S3_BUCKET`` for ``s3``):
the adapter's own configuration, which genstudio does not read itself. A factory
that misses a variable raises ``SystemExit`` naming it. ``GPU_PROVIDERS`` (the
failover order) and ``MEDIA_STORAGE`` choose among the installed names; a name that
is not installed stops the process at start, listing those that are
(``entrypoints/settings/adapters.py``). docs/adapters.md is the guide.

Nothing is imported until a factory is loaded: listing the names reads the installed
distributions' metadata only.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from genstudio.entrypoints.settings import Settings
    from genstudio.ports.gpu import GpuProvider
    from genstudio.ports.storage import MediaStorage

GPU_PROVIDERS = "genstudio.gpu_providers"
MEDIA_STORAGE = "genstudio.media_storage"

#: what each group holds, in words, for the messages
KINDS = {GPU_PROVIDERS: "GPU providers", MEDIA_STORAGE: "media storages"}

#: genstudio's own adapters, exactly as pyproject.toml declares their entry points; also
#: known here, so a checkout whose editable install predates those declarations still
#: starts (tests/unit/test_adapter_selection.py keeps the two the same)
OWN: dict[str, dict[str, str]] = {
    GPU_PROVIDERS: {
        "local": "genstudio.entrypoints.factories:local_gpu",
        "modal": "genstudio.entrypoints.factories:modal_gpu",
        "runpod": "genstudio.entrypoints.factories:runpod_gpu",
    },
    MEDIA_STORAGE: {
        "local": "genstudio.entrypoints.factories:local_storage",
        "supabase": "genstudio.entrypoints.factories:supabase_storage",
    },
}


class GpuProviderFactory(Protocol):
    """What a ``genstudio.gpu_providers`` entry point names."""

    def __call__(self, settings: Settings, env: Mapping[str, str], /) -> GpuProvider: ...


class MediaStorageFactory(Protocol):
    """What a ``genstudio.media_storage`` entry point names."""

    def __call__(self, settings: Settings, env: Mapping[str, str], /) -> MediaStorage: ...


def prefix_of(name: str) -> str:
    """The environment prefix of an adapter's own variables: ``fal`` -> ``FAL_``."""
    return name.upper().replace("-", "_").replace(".", "_") + "_"


@functools.cache
def installed(group: str) -> dict[str, importlib.metadata.EntryPoint]:
    """Every adapter of the group by name: the installed packages' entry points, and
    genstudio's own where its metadata lacks them. Two packages registering one name
    stop the process: which one is meant cannot be guessed."""
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry in importlib.metadata.entry_points(group=group):
        seen = found.get(entry.name)
        if seen is not None and seen.value != entry.value:
            raise SystemExit(
                f"two installed packages register the {_kind(group, 1)} {entry.name!r}: "
                f"{_origin(seen)} and {_origin(entry)}; uninstall one"
            )
        found[entry.name] = entry
    for name, value in OWN.get(group, {}).items():
        found.setdefault(name, importlib.metadata.EntryPoint(name, value, group))
    return found


def names(group: str) -> list[str]:
    """The installed adapters' names, sorted."""
    return sorted(installed(group))


def refuse_unknown(group: str, variable: str, chosen: list[str] | tuple[str, ...]) -> None:
    """SystemExit naming the variable when it names an adapter that is not installed."""
    if not chosen:
        return  # nothing named: no need to read every distribution's metadata (~20 ms)
    known = installed(group)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        listed = ", ".join(repr(n) for n in unknown)
        raise SystemExit(
            f"{variable} names {listed}, which {'is' if len(unknown) == 1 else 'are'} not "
            f"installed; installed {KINDS.get(group, group)}: {', '.join(names(group))} "
            f"(a package adds one under the entry-point group {group!r}: docs/adapters.md)"
        )


def load(group: str, name: str, variable: str) -> Callable[..., Any]:
    """The factory registered under ``name``: SystemExit when there is none or it
    cannot be imported (a broken package), naming ``variable``."""
    refuse_unknown(group, variable, [name])
    entry = installed(group)[name]
    try:
        factory = entry.load()
    except Exception as exc:
        raise SystemExit(
            f"{variable}: the {_kind(group, 1)} {name!r} ({entry.value}) could not be "
            f"loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if not callable(factory):
        raise SystemExit(f"{variable}: {entry.value} (registered as {name!r}) is not callable")
    return factory  # type: ignore[no-any-return]


def load_gpu_provider(name: str) -> GpuProviderFactory:
    factory: GpuProviderFactory = load(GPU_PROVIDERS, name, "GPU_PROVIDERS")
    return factory


def load_media_storage(name: str) -> MediaStorageFactory:
    factory: MediaStorageFactory = load(MEDIA_STORAGE, name, "MEDIA_STORAGE")
    return factory


def _kind(group: str, count: int) -> str:
    words = KINDS.get(group, group)
    return words.removesuffix("s") if count == 1 else words


def _origin(entry: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry, "dist", None)
    package = dist.metadata["Name"] if dist is not None else "an unknown package"
    return f"{package} ({entry.value})"
