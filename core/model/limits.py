"""Rate limits: which budgets a request spends, by operation class and tier. Pure.

Every request belongs to one operation class; a class has a budget per user (one for
the free tier, one for subscribers) and a budget per client IP address, each a number
of requests in a moving window of seconds. What counts and stores the spending is the
``ports.limits.RateCounter``; the edge asks :meth:`RatePolicy.limits_for` which
budgets a request spends, and refuses it with :class:`RateLimited` when one is spent.
"""

from __future__ import annotations

import enum

import msgspec

from genstudio.core.model.errors import DomainError
from genstudio.core.model.profiles import SubscriptionTier


class Operation(enum.StrEnum):
    """What a request does, as far as its cost to us is concerned."""

    SUBMISSIONS = "submissions"  # paid work: generation and training jobs
    READS = "reads"  # profile, jobs, ledger, catalog, media
    UPLOADS = "uploads"  # requests whose body is a file (training photos)
    WRITES = "writes"  # other changes: cancel, purchase claims, photo sets
    SOCIAL_WRITES = "social_writes"  # comments, likes, follows: the class of routes to come
    FAILED_AUTH = "failed_auth"  # tokens refused, counted per IP only
    WEBHOOKS = "webhooks"  # store and provider notifications, per IP only


class Audience(enum.StrEnum):
    """Who a per-user budget is for: the tiers share two budgets."""

    FREE = "free"
    SUBSCRIBER = "subscriber"


def audience_of(tier: SubscriptionTier) -> Audience:
    return Audience.FREE if tier is SubscriptionTier.FREE else Audience.SUBSCRIBER


class Scope(enum.StrEnum):
    USER = "user"
    IP = "ip"


class Budget(msgspec.Struct, frozen=True):
    """``amount`` requests in any ``seconds``-long window (a moving window)."""

    amount: int
    seconds: int

    def __post_init__(self) -> None:
        if self.amount < 1 or self.seconds < 1:
            raise ValueError("a rate budget needs at least 1 request in at least 1 second")

    @classmethod
    def parse(cls, text: str) -> Budget:
        """``"120/60"``: 120 requests in 60 s; ``"120/minute"`` (second, minute, hour,
        day) says the same. Raises ValueError naming what is wrong."""
        amount, sep, window = text.strip().partition("/")
        if not sep:
            raise ValueError(f"{text!r} is not AMOUNT/SECONDS (e.g. 120/60 or 120/minute)")
        window = window.strip().lower()
        seconds = _UNITS.get(window.removesuffix("s")) if not window.isdigit() else int(window)
        if seconds is None or not amount.strip().isdigit():
            raise ValueError(f"{text!r} is not AMOUNT/SECONDS (e.g. 120/60 or 120/minute)")
        return cls(int(amount), seconds)


_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class Limit(msgspec.Struct, frozen=True):
    """One budget a request spends; ``name`` is the policy's name on the wire
    (``RateLimit-Policy: "reads-user";q=240;w=60``)."""

    operation: Operation
    scope: Scope
    budget: Budget

    @property
    def name(self) -> str:
        return f"{self.operation.value.replace('_', '-')}-{self.scope.value}"

    def key(self, subject: str) -> str:
        """The counter's key: the budget's size is part of it, so that a user moving
        to another tier starts a counter of the new size."""
        return f"{self.name}:{self.budget.amount}/{self.budget.seconds}:{subject}"


class UserBudgets(msgspec.Struct, frozen=True):
    free: Budget
    subscriber: Budget

    def of(self, audience: Audience) -> Budget:
        return self.free if audience is Audience.FREE else self.subscriber


def _default_users() -> dict[Operation, UserBudgets]:
    b = Budget
    return {
        Operation.SUBMISSIONS: UserBudgets(b(10, 60), b(30, 60)),
        Operation.READS: UserBudgets(b(240, 60), b(600, 60)),
        Operation.UPLOADS: UserBudgets(b(30, 60), b(90, 60)),
        Operation.WRITES: UserBudgets(b(30, 60), b(90, 60)),
        Operation.SOCIAL_WRITES: UserBudgets(b(10, 60), b(30, 60)),
    }


def _default_ips() -> dict[Operation, Budget]:
    b = Budget
    # an address may hold many users (a carrier's NAT, an office): several times a
    # subscriber's budget; failed tokens and webhooks have no user to count
    return {
        Operation.SUBMISSIONS: b(120, 60),
        Operation.READS: b(2400, 60),
        Operation.UPLOADS: b(360, 60),
        Operation.WRITES: b(360, 60),
        Operation.SOCIAL_WRITES: b(120, 60),
        Operation.FAILED_AUTH: b(20, 300),
        Operation.WEBHOOKS: b(600, 60),
    }


class RatePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The budgets of every class (``GENSTUDIO_RATE_*``); a class with no user budget
    is counted per IP only, one with neither is not limited."""

    users: dict[Operation, UserBudgets] = msgspec.field(default_factory=_default_users)
    ips: dict[Operation, Budget] = msgspec.field(default_factory=_default_ips)

    def limits_for(self, operation: Operation, tier: SubscriptionTier | None) -> list[Limit]:
        """The budgets a request of ``operation`` spends, the user's first (``tier`` is
        None for a request without a user: it spends the IP's budget only)."""
        limits: list[Limit] = []
        users = self.users.get(operation)
        if users is not None and tier is not None:
            limits.append(Limit(operation, Scope.USER, users.of(audience_of(tier))))
        ip = self.ips.get(operation)
        if ip is not None:
            limits.append(Limit(operation, Scope.IP, ip))
        return limits

    def needs_tier(self, operation: Operation) -> bool:
        users = self.users.get(operation)
        return users is not None and users.free != users.subscriber


class Usage(msgspec.Struct, frozen=True):
    """A counter's answer: whether the request may go on, what is left of the budget,
    and in how many seconds the oldest request in the window leaves it."""

    allowed: bool
    remaining: int
    reset_after: int


class RateLimited(DomainError):
    """A budget is spent: the request is refused before any work, and may be retried
    after ``retry_after`` seconds."""

    code = "rate_limited"

    def __init__(self, limit: Limit, usage: Usage) -> None:
        b = limit.budget
        super().__init__(
            f"too many {limit.operation.value.replace('_', ' ')} requests: "
            f"{b.amount} in {b.seconds} s per {limit.scope.value}; "
            f"retry in {max(usage.reset_after, 1)} s"
        )
        self.limit = limit
        self.usage = usage

    @property
    def retry_after(self) -> int:
        return max(self.usage.reset_after, 1)
