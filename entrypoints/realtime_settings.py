"""Realtime settings: ``GENSTUDIO_REALTIME_*`` environment variables."""

from __future__ import annotations

import msgspec


class RealtimeSettings(msgspec.Struct, frozen=True, kw_only=True):
    #: events kept per user for a reconnecting client, and for how long (seconds)
    history: int = 100
    history_ttl: float = 86400.0
    #: live events one connection may have waiting; one more and it is dropped
    queue: int = 256
    #: seconds without an event before a ping is sent
    heartbeat: float = 25.0
    #: seconds a client has to send its auth message (token not in the header)
    auth_timeout: float = 10.0


def realtime_settings_from_env(env: dict[str, str]) -> RealtimeSettings:
    """``GENSTUDIO_REALTIME_HISTORY``, ``…_HISTORY_TTL``, ``…_QUEUE``, ``…_HEARTBEAT``,
    ``…_AUTH_TIMEOUT``; unset keeps the default, a value that does not parse stops
    the process."""
    d = RealtimeSettings()
    return RealtimeSettings(
        history=int(_number(env, "GENSTUDIO_REALTIME_HISTORY", d.history, minimum=1)),
        history_ttl=_number(env, "GENSTUDIO_REALTIME_HISTORY_TTL", d.history_ttl, minimum=1),
        queue=int(_number(env, "GENSTUDIO_REALTIME_QUEUE", d.queue, minimum=1)),
        heartbeat=_number(env, "GENSTUDIO_REALTIME_HEARTBEAT", d.heartbeat, minimum=0.1),
        auth_timeout=_number(env, "GENSTUDIO_REALTIME_AUTH_TIMEOUT", d.auth_timeout, minimum=0.1),
    )


def _number(env: dict[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}")
    return value
