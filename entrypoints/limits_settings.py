"""Rate limit settings: ``GENSTUDIO_RATE_*`` environment variables."""

from __future__ import annotations

import msgspec

from genstudio.core.model.limits import Budget, Operation, RatePolicy, UserBudgets


class RateSettings(msgspec.Struct, frozen=True, kw_only=True):
    #: off for a Settings built in code (tests that make many requests as one user);
    #: ``from_env`` turns it on unless ``GENSTUDIO_RATE_LIMITS=off``
    enabled: bool = False
    policy: RatePolicy = msgspec.field(default_factory=RatePolicy)
    #: multipart requests (uploads) read at once by one process; more wait their turn
    #: before their body is read, so memory stays bounded whatever arrives together
    uploads_in_flight: int = 4
    #: seconds a user's tier is remembered between reads of their profile
    tier_cache_seconds: float = 30.0


def rate_settings_from_env(env: dict[str, str]) -> RateSettings:
    """``GENSTUDIO_RATE_LIMITS`` (on/off, default on); per class (SUBMISSIONS, READS,
    UPLOADS, WRITES, SOCIAL_WRITES): ``GENSTUDIO_RATE_<CLASS>_FREE``, ``…_SUBSCRIBER``
    and ``…_IP``; ``GENSTUDIO_RATE_FAILED_AUTH_IP``, ``GENSTUDIO_RATE_WEBHOOKS_IP``;
    each ``AMOUNT/SECONDS`` (``120/60``) or ``AMOUNT/UNIT`` (``120/minute``); unset keeps
    the default. ``GENSTUDIO_UPLOADS_IN_FLIGHT``, ``GENSTUDIO_RATE_TIER_CACHE``. A value
    that does not parse stops the process."""
    defaults = RatePolicy()
    users = dict(defaults.users)
    ips = dict(defaults.ips)
    for op in Operation:
        prefix = f"GENSTUDIO_RATE_{op.name}"
        if op in users:
            free = _budget(env, f"{prefix}_FREE") or users[op].free
            sub = _budget(env, f"{prefix}_SUBSCRIBER") or users[op].subscriber
            users[op] = UserBudgets(free, sub)
        ips[op] = _budget(env, f"{prefix}_IP") or ips[op]
    raw = env.get("GENSTUDIO_RATE_LIMITS", "").strip().lower() or "on"
    if raw not in ("on", "off", "1", "0", "true", "false", "yes", "no"):
        raise SystemExit(f"GENSTUDIO_RATE_LIMITS must be on or off, not {raw!r}")
    return RateSettings(
        enabled=raw in ("on", "1", "true", "yes"),
        policy=RatePolicy(users=users, ips=ips),
        uploads_in_flight=int(_number(env, "GENSTUDIO_UPLOADS_IN_FLIGHT", 4, minimum=1)),
        tier_cache_seconds=_number(env, "GENSTUDIO_RATE_TIER_CACHE", 30.0, minimum=0),
    )


def _budget(env: dict[str, str], name: str) -> Budget | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return Budget.parse(raw)
    except ValueError as exc:
        raise SystemExit(f"{name}: {exc}") from None


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
