"""Which adapters a deployment runs (issue #23): ``GPU_PROVIDERS`` and ``MEDIA_STORAGE``,
names of installed adapters (entrypoints/plugins.py), and the variables of the outside
adapters they name (``<NAME>_*``), handed to those adapters' factories."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.entrypoints import plugins
from genstudio.entrypoints.settings.env import Env


class AdapterSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Unset, genstudio chooses as it always has: Modal then Runpod where configured,
    else the CPU renderer; Supabase Storage where configured, else local files."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("GPU_PROVIDERS", "MEDIA_STORAGE")

    #: GPU_PROVIDERS=modal,fal: the providers in failover order (the first is primary)
    gpu_providers: tuple[str, ...] = ()
    #: MEDIA_STORAGE=s3
    media_storage: str | None = None
    #: the ``<NAME>_*`` variables of the outside adapters named above (genstudio's own
    #: read their settings groups): ``FAL_KEY`` for ``fal``
    env: dict[str, str] = msgspec.field(default_factory=dict)

    def env_of(self, name: str) -> dict[str, str]:
        """The variables of the adapter ``name``: those starting ``<NAME>_``, less those
        of a named adapter whose prefix is longer (``ACME_STORE_*`` are ``acme-store``'s,
        not ``acme``'s)."""
        prefix = plugins.prefix_of(name)
        longer = tuple(
            p
            for p in map(plugins.prefix_of, (*self.gpu_providers, self.media_storage or ""))
            if p != prefix and p.startswith(prefix)
        )
        return {
            k: v
            for k, v in self.env.items()
            if k.startswith(prefix) and not (longer and k.startswith(longer))
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AdapterSettings:
        """Stops the process (SystemExit naming the variable) on a name no installed
        package registers, listing those that are."""
        e = Env(env)
        gpus = _names(e, "GPU_PROVIDERS")
        storage = _names(e, "MEDIA_STORAGE")
        if len(storage) > 1:
            raise SystemExit(f"MEDIA_STORAGE names one storage, not {len(storage)}")
        plugins.refuse_unknown(plugins.GPU_PROVIDERS, "GPU_PROVIDERS", gpus)
        plugins.refuse_unknown(plugins.MEDIA_STORAGE, "MEDIA_STORAGE", storage)
        outside = [
            *(n for n in gpus if n not in plugins.OWN[plugins.GPU_PROVIDERS]),
            *(n for n in storage if n not in plugins.OWN[plugins.MEDIA_STORAGE]),
        ]
        prefixes = tuple(plugins.prefix_of(name) for name in outside)
        own_env: dict[str, str] = {}
        if prefixes:
            for name in sorted(k for k in env if k.startswith(prefixes)):
                value = e.opt(name)
                if value is not None:
                    own_env[name] = value
        return cls(
            gpu_providers=tuple(gpus),
            media_storage=storage[0] if storage else None,
            env=own_env,
        )


def _names(e: Env, variable: str) -> list[str]:
    raw = e.opt(variable)
    if raw is None:
        return []
    names = [part.strip() for part in raw.split(",")]
    if any(not n for n in names):
        raise SystemExit(f"{variable}: an empty name in {raw!r} (names are separated by commas)")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SystemExit(f"{variable} lists {', '.join(repr(n) for n in twice)} twice")
    return names
