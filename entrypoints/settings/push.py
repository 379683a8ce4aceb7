"""Push and notification settings: ``EXPO_*`` and ``GENSTUDIO_NOTIFY_*``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.entrypoints.settings.env import Env


class ExpoSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Expo push only when EXPO_PUSH_ENABLED=1 or EXPO_ACCESS_TOKEN is set; otherwise
    the in-app inbox is the only channel (push deliveries are skipped)."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("EXPO_",)

    enabled: bool = False
    access_token: str | None = None
    base_url: str = "https://exp.host"
    rate: float = 600.0  # messages/s this process sends at most (Expo: 600/s a project)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ExpoSettings:
        e = Env(env)
        return cls(
            enabled=bool(e.opt("EXPO_ACCESS_TOKEN"))
            or (e.opt("EXPO_PUSH_ENABLED") or "").lower() in ("1", "true", "yes"),
            access_token=e.opt("EXPO_ACCESS_TOKEN"),
            base_url=e.text("EXPO_BASE_URL", "https://exp.host"),
            rate=e.number("EXPO_MAX_MESSAGES_PER_SECOND", 600.0),
        )


class NotifySettings(msgspec.Struct, frozen=True, kw_only=True):
    """The aggregation window, a sender's lease on a push, the low-balance threshold."""

    PREFIXES: ClassVar[tuple[str, ...]] = ("GENSTUDIO_NOTIFY_",)

    aggregation_window: float = 600.0
    push_lease: float = 60.0
    low_balance_below: int = 5

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> NotifySettings:
        e = Env(env)
        return cls(
            aggregation_window=e.number("GENSTUDIO_NOTIFY_AGGREGATION_WINDOW", 600.0),
            push_lease=e.number("GENSTUDIO_NOTIFY_PUSH_LEASE", 60.0),
            low_balance_below=e.integer("GENSTUDIO_NOTIFY_LOW_BALANCE_BELOW", 5),
        )
