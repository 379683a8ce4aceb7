"""Operational metrics: counts and timings operators watch (Prometheus in production).

The core never records into this port itself: what it commits is observed at the
adapter layer (``adapters/observed``: a unit of work that reports the job
transitions, ledger entries and holds it committed; a push sender that reports
what it sent) and recorded here. Every method is cheap, synchronous and never
raises: recording a metric must not fail a request or a job.
"""

from __future__ import annotations

import enum
from typing import Protocol


class JobOutcome(enum.StrEnum):
    """How a job ended (``job_finished``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # for good: a content refusal, invalid input, an internal error
    DEAD_LETTERED = "dead_lettered"  # its attempts used up on provider faults
    CANCELLED = "cancelled"


class AttemptOutcome(enum.StrEnum):
    """How one attempt at a provider ended (``attempt_ended``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"  # retried, dead-lettered or failed: ``reason`` says why
    NOT_TAKEN = "not_taken"  # the provider could not be reached: no attempt spent


class CreditFlow(enum.StrEnum):
    """Where credits moved (``credits_moved``), always counted as a positive amount."""

    GRANTED = "granted"  # an operator's or promotional grant
    PURCHASED = "purchased"  # a verified store purchase
    ALLOWANCE = "allowance"  # a subscription period's credits
    HELD = "held"  # reserved for a job at submission
    SPENT = "spent"  # a hold settled: the job succeeded
    RELEASED = "released"  # a hold given back: the job failed or was cancelled
    REFUNDED = "refunded"  # credits given back for a settled spend
    CLAWED_BACK = "clawed_back"  # a refunded or revoked purchase's unspent credits
    EXPIRED = "expired"  # an expired lot's unspent remainder
    ADJUSTED_UP = "adjusted_up"  # an operator's correction, either way
    ADJUSTED_DOWN = "adjusted_down"


class PushStage(enum.StrEnum):
    SEND = "send"  # the push service refused a message, or could not be reached
    RECEIPT = "receipt"  # a receipt said the message was not delivered


class Metrics(Protocol):
    def job_submitted(self, kind: str) -> None:
        """A job was recorded (its hold taken)."""
        ...

    def job_claimed(self, kind: str, waited_seconds: float) -> None:
        """A worker took a due job; ``waited_seconds`` since it became due."""
        ...

    def attempt_ended(
        self,
        *,
        kind: str,
        provider: str,
        outcome: AttemptOutcome,
        reason: str,
        run_seconds: float | None,
    ) -> None:
        """An attempt at ``provider`` ended. ``reason`` is the failure's reason
        (``infrastructure``, ``timeout``, ``content``, ``internal``), ``none`` on
        success; ``run_seconds`` from the provider's acceptance, when it accepted."""
        ...

    def job_finished(self, *, kind: str, outcome: JobOutcome) -> None: ...

    def credits_moved(self, flow: CreditFlow, amount: int) -> None:
        """``amount`` credits (positive) moved along ``flow``."""
        ...

    def push_sent(self, count: int) -> None:
        """``count`` messages accepted by the push service."""
        ...

    def push_failed(self, stage: PushStage, error: str, count: int) -> None:
        """``count`` messages failed at ``stage``; ``error`` is the service's code
        (``DeviceNotRegistered``, ...) or ``unavailable`` (not reached at all)."""
        ...

    def breaker_state(self, provider: str, state: str) -> None:
        """This process's circuit breaker for ``provider`` is ``closed``,
        ``half_open`` or ``open``."""
        ...
