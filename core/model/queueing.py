"""Queue policy: priority with aging, per-user limits, retries with backoff, leases,
and each kind's timeout.

Postgres holds the queue's truth (jobs with their status, priority and retry
time); Redis messages only wake workers up. So these rules are applied when a
worker *claims* a job from the database, and both unit-of-work adapters order
candidates with ``PriorityPolicy.score``'s formula.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.jobs import FailureReason, Job
from genstudio.core.model.pricing import ModelKind


class PriorityPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """score = tier priority + one point per ``aging_seconds`` waited, up to ``max_boost``.

    With tiers 0 (free), 5 (pro) and 9 (premium) and the defaults, a free job that
    has waited 2.5 minutes ranks with a pro job submitted now: nobody starves.
    """

    aging_seconds: float = 30.0
    max_boost: float = 20.0

    def score(self, job: Job, now: datetime) -> float:
        waited = max(0.0, (now - job.created_at).total_seconds())
        return job.priority + min(waited / self.aging_seconds, self.max_boost)


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with full jitter: attempt n waits U(0, min(cap, base * 2^(n-1)))."""

    max_attempts: dict[str, int] = msgspec.field(
        default_factory=lambda: {
            ModelKind.IMAGE.value: 3,
            ModelKind.EDIT.value: 3,
            ModelKind.VIDEO.value: 3,
            ModelKind.TRAINING.value: 2,
        }
    )
    base_delay: float = 2.0
    max_delay: float = 300.0

    def attempts_for(self, kind: str) -> int:
        return self.max_attempts.get(kind, 3)

    def retryable(self, reason: FailureReason) -> bool:
        """A content refusal is final; the provider or the network breaking is not."""
        return reason in (FailureReason.INFRASTRUCTURE, FailureReason.TIMEOUT)

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        ceiling = min(self.max_delay, math.ldexp(self.base_delay, max(0, attempt - 1)))
        return rand() * ceiling

    def next_attempt_at(
        self, attempt: int, now: datetime, rand: Callable[[], float] = random.random
    ) -> datetime:
        return now + timedelta(seconds=self.delay(attempt, rand))


class TimeoutPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """How long an attempt of each kind may run at its provider before it is cancelled
    and retried, counted from the provider's acceptance (``Job.submitted_at``).

    ``default_seconds`` applies to every kind without an entry in ``per_kind``
    (image, edit and video render in minutes; a LoRA training runs for 20-60).
    """

    default_seconds: float = 900.0
    per_kind: dict[str, float] = msgspec.field(
        default_factory=lambda: {ModelKind.TRAINING.value: 3600.0}
    )

    def __post_init__(self) -> None:
        for kind, seconds in (("default", self.default_seconds), *self.per_kind.items()):
            if not seconds > 0:
                raise ValueError(f"the {kind} job timeout must be positive, not {seconds}")

    def seconds_for(self, kind: str) -> float:
        return self.per_kind.get(kind, self.default_seconds)


class QueuePolicy(msgspec.Struct, frozen=True, kw_only=True):
    priority: PriorityPolicy = PriorityPolicy()
    retry: RetryPolicy = RetryPolicy()
    timeouts: TimeoutPolicy = TimeoutPolicy()
    per_user_in_flight: int = 2  # jobs of one user at providers at once
    lease_seconds: float = 30.0  # renewed while a worker polls the provider
    # the reconciler re-sends a wake-up for a due job not picked up for this long
    redeliver_after_seconds: float = 15.0


class QueueDepth(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    priority: int
    queued: int
    due: int
    #: how long the longest-waiting due job has waited since it became due (its retry
    #: time, or its creation when it had none); 0 when none is due. Jobs still waiting
    #: out a backoff are not waiting for a worker, and do not count.
    oldest_waiting_seconds: float


class KindStats(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    in_flight: int
    dead_letters: int
    succeeded: dict[str, int]  # window label -> count finished in that window
    failed: dict[str, int]


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    depths: list[QueueDepth]
    kinds: list[KindStats]


#: the windows over which success and failure rates are reported
STATS_WINDOWS: dict[str, timedelta] = {
    "5m": timedelta(minutes=5),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
}
