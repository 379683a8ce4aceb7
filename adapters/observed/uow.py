"""A unit of work that reports what it committed to the metrics port.

It wraps any ``UnitOfWork`` (Postgres, memory) and watches three repositories:
``jobs`` (a job recorded; a job's status changing: claimed, an attempt that
succeeded, failed or was not taken, a job that ended), ``ledger`` (every entry
appended, and holds closed: a settled hold is credits spent) — and nothing else.
Observations wait for the transaction: they are recorded once ``commit()``
returned, dropped by a rollback, a refused commit or an exception. So the numbers
are what the database holds, counted once, by the process that committed them,
without a line of recording in the core.

A job's change is judged against the job as this unit of work read it (``get``,
``claim_next``); a change to a job it did not read is judged from the new state
alone (a retry cannot be told from a hand-back then, and is not counted).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Self

from genstudio.core.model.credits import EntryKind, Hold, HoldStatus, LedgerEntry
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.queueing import QueuePolicy
from genstudio.ports.metrics import AttemptOutcome, CreditFlow, JobOutcome, Metrics
from genstudio.ports.repositories.credits import LedgerRepository
from genstudio.ports.repositories.jobs import JobRepository
from genstudio.ports.unit_of_work import Effect, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("genstudio.metrics")

Observation = Callable[[Metrics], None]

#: ledger entry kinds and the flow they count in (by their absolute amount); a
#: settle entry moves nothing (the hold's credits left at submission): a settled
#: hold is counted as spent from ``close_hold``
_FLOWS: dict[EntryKind, CreditFlow] = {
    EntryKind.GRANT: CreditFlow.GRANTED,
    EntryKind.PURCHASE: CreditFlow.PURCHASED,
    EntryKind.ALLOWANCE: CreditFlow.ALLOWANCE,
    EntryKind.HOLD: CreditFlow.HELD,
    EntryKind.RELEASE: CreditFlow.RELEASED,
    EntryKind.REFUND: CreditFlow.REFUNDED,
    EntryKind.EXPIRY: CreditFlow.EXPIRED,
    EntryKind.CLAWBACK: CreditFlow.CLAWED_BACK,
}

_AT_PROVIDER = frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING})
NO_PROVIDER = "none"


def _seconds(since: datetime | None, until: datetime) -> float | None:
    return None if since is None else max(0.0, (until - since).total_seconds())


def entry_observations(entry: LedgerEntry) -> list[Observation]:
    """What a ledger entry adds to the credit flows."""
    if entry.amount == 0:
        return []
    if entry.kind is EntryKind.ADJUSTMENT:
        flow = CreditFlow.ADJUSTED_UP if entry.amount > 0 else CreditFlow.ADJUSTED_DOWN
    elif entry.kind in _FLOWS:
        flow = _FLOWS[entry.kind]
    else:
        return []
    amount = abs(entry.amount)
    return [lambda m: m.credits_moved(flow, amount)]


def hold_observations(hold: Hold) -> list[Observation]:
    """A settled hold is what the job spent."""
    if hold.status is not HoldStatus.SETTLED or hold.amount == 0:
        return []
    amount = abs(hold.amount)
    return [lambda m: m.credits_moved(CreditFlow.SPENT, amount)]


def job_observations(before: Job | None, after: Job) -> list[Observation]:
    """What a job's change says: claimed, an attempt ended, the job ended. ``before``
    is the job as read in the same unit of work (None: not read there)."""
    if before is not None and before.status is after.status:
        return []  # a lease renewal, progress, a takeover: no transition
    kind = after.kind.value
    provider = after.provider or NO_PROVIDER
    at = after.updated_at
    found: list[Observation] = []
    if after.status is JobStatus.DISPATCHED:
        if before is not None and before.status is JobStatus.QUEUED:
            waited = _seconds(before.next_attempt_at or before.created_at, at) or 0.0
            found.append(lambda m: m.job_claimed(kind, waited))
        return found
    was_at_provider = before is None or before.status in _AT_PROVIDER
    submitted = after.submitted_at or (before.submitted_at if before is not None else None)
    run = _seconds(submitted, at)
    reason = after.error.reason.value if after.error is not None else "none"
    if after.status is JobStatus.SUCCEEDED:
        found.append(
            lambda m: m.attempt_ended(
                kind=kind,
                provider=provider,
                outcome=AttemptOutcome.SUCCEEDED,
                reason="none",
                run_seconds=run,
            )
        )
        found.append(lambda m: m.job_finished(kind=kind, outcome=JobOutcome.SUCCEEDED))
    elif after.status is JobStatus.FAILED:
        if after.provider is not None and was_at_provider:
            found.append(
                lambda m: m.attempt_ended(
                    kind=kind,
                    provider=provider,
                    outcome=AttemptOutcome.FAILED,
                    reason=reason,
                    run_seconds=run,
                )
            )
        dead = after.dead_lettered_at is not None
        outcome = JobOutcome.DEAD_LETTERED if dead else JobOutcome.FAILED
        found.append(lambda m: m.job_finished(kind=kind, outcome=outcome))
    elif after.status is JobStatus.CANCELLED:
        found.append(lambda m: m.job_finished(kind=kind, outcome=JobOutcome.CANCELLED))
    elif after.status is JobStatus.QUEUED and before is not None and before.status in _AT_PROVIDER:
        if after.attempts == before.attempts and after.error is not None:
            attempt = AttemptOutcome.FAILED  # a retry: the attempt counted
        elif after.next_attempt_at is not None and after.error is not None:
            attempt = AttemptOutcome.NOT_TAKEN  # the provider was not reached
        else:
            return found  # handed back by a stopping worker: nothing failed
        found.append(
            lambda m: m.attempt_ended(
                kind=kind, provider=provider, outcome=attempt, reason=reason, run_seconds=run
            )
        )
    return found


class _ObservedJobs:
    """``JobRepository`` that remembers the jobs it handed out and judges updates."""

    def __init__(self, inner: JobRepository, pending: list[Observation]) -> None:
        self._inner = inner
        self._pending = pending
        self._seen: dict[uuid.UUID, Job] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def add(self, job: Job) -> None:
        await self._inner.add(job)
        kind = job.kind.value
        self._pending.append(lambda m: m.job_submitted(kind))
        self._seen[job.id] = job

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        job = await self._inner.get(job_id, lock=lock)
        if job is not None:
            self._seen[job.id] = job
        return job

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        job = await self._inner.claim_next(kind, now=now, policy=policy)
        if job is not None:
            self._seen[job.id] = job
        return job

    async def update(self, job: Job) -> Job:
        stored = await self._inner.update(job)
        self._pending.extend(job_observations(self._seen.get(job.id), stored))
        self._seen[job.id] = stored
        return stored


class _ObservedLedger:
    """``LedgerRepository`` that notes the entries appended and the holds settled."""

    def __init__(self, inner: LedgerRepository, pending: list[Observation]) -> None:
        self._inner = inner
        self._pending = pending

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, entry: LedgerEntry) -> None:
        await self._inner.append(entry)
        self._pending.extend(entry_observations(entry))

    async def append_deferred(self, entry: LedgerEntry) -> None:
        await self._inner.append_deferred(entry)
        self._pending.extend(entry_observations(entry))

    async def close_hold(self, hold: Hold) -> None:
        await self._inner.close_hold(hold)
        self._pending.extend(hold_observations(hold))


class ObservedUnitOfWork:
    """See the module's docstring. Every other member is the wrapped unit's."""

    def __init__(self, inner: UnitOfWork, metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics
        self._pending: list[Observation] = []
        self._jobs: _ObservedJobs | None = None
        self._ledger: _ObservedLedger | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def jobs(self) -> JobRepository:
        if self._jobs is None:
            self._jobs = _ObservedJobs(self._inner.jobs, self._pending)
        return self._jobs

    @property
    def ledger(self) -> LedgerRepository:
        if self._ledger is None:
            self._ledger = _ObservedLedger(self._inner.ledger, self._pending)
        return self._ledger

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pending.clear()  # what was not committed counts for nothing
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        await self._inner.commit()
        observations = self._pending[:]
        self._pending.clear()
        for observe in observations:
            try:
                observe(self._metrics)
            except Exception:  # a metric must never fail the work it counts
                log.exception("recording a metric failed")

    async def rollback(self) -> None:
        self._pending.clear()
        await self._inner.rollback()

    def after_commit(self, effect: Effect) -> None:
        self._inner.after_commit(effect)


class ObservedUnitOfWorkFactory:
    """Each unit of work of ``inner``, observed into ``metrics``."""

    def __init__(self, inner: UnitOfWorkFactory, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def __call__(self) -> UnitOfWork:
        return ObservedUnitOfWork(self.inner(), self.metrics)
