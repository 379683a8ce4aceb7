"""Jobs: a state machine over a job's life; illegal transitions are errors."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import IllegalTransition, InvalidInput, JobFinished
from genstudio.core.model.job_params import JobParams
from genstudio.core.model.pricing import ModelKind


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.DISPATCHED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.DISPATCHED: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.QUEUED,
        }
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class FailureReason(enum.StrEnum):
    INFRASTRUCTURE = "infrastructure"  # the provider broke: retry or fail over
    CONTENT = "content"  # the request itself was refused: never retried
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class JobError(msgspec.Struct, frozen=True):
    reason: FailureReason
    message: str


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: ModelKind
    model_id: str
    params: JobParams
    cost: int
    hold_id: uuid.UUID | None
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    provider: str | None = None
    provider_job_id: str | None = None
    progress: int = 0
    error: JobError | None = None
    asset_ids: tuple[uuid.UUID, ...] = ()
    priority: int = 0
    version: int = 0  # bumped by the repository on every update: optimistic concurrency
    # a retry waits in the database until then (exponential backoff with jitter)
    next_attempt_at: datetime | None = None
    # the worker that owns the job while it is at a provider, and until when; a
    # worker whose lease ran out (it died) is replaced by the next one to claim it
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # set when a failure exhausted the job's attempts: operators see and re-run it
    dead_lettered_at: datetime | None = None
    rerun_of: uuid.UUID | None = None
    # when a provider accepted this attempt's work (with ``provider_job_id``): the job
    # timeout runs from here. A takeover (another worker follows the same work at the
    # provider after a crash, an expired lease or a graceful hand-back) keeps it; a new
    # attempt (a retry, a failover, a hand-back that requeues) clears it, and the
    # provider's next acceptance sets it again. A worker that died before the
    # acceptance was recorded leaves none: its successor submits again, and times
    # the attempt from that acceptance.
    submitted_at: datetime | None = None

    def is_due(self, now: datetime) -> bool:
        """Queued and past any retry delay: a worker may claim it."""
        return self.status is JobStatus.QUEUED and (
            self.next_attempt_at is None or self.next_attempt_at <= now
        )

    def postpone(self, until: datetime, now: datetime) -> Job:
        """A queued job waits until ``until`` (no provider can take it now)."""
        if self.status is not JobStatus.QUEUED:
            raise IllegalTransition(f"job {self.id} is {self.status}, not queued")
        return msgspec.structs.replace(self, next_attempt_at=until, updated_at=now)

    def lease_expired(self, now: datetime) -> bool:
        return self.lease_expires_at is None or self.lease_expires_at <= now

    def is_abandoned(self, now: datetime) -> bool:
        """At a provider (or on its way) with nobody holding the lease: a worker died."""
        return self.status in (JobStatus.DISPATCHED, JobStatus.RUNNING) and self.lease_expired(now)

    def leased(self, owner: str, until: datetime, now: datetime) -> Job:
        """Take or renew the job's lease (no state change)."""
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        return msgspec.structs.replace(
            self, lease_owner=owner, lease_expires_at=until, updated_at=now
        )

    def _to(self, status: JobStatus, now: datetime, **changes: object) -> Job:
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        if status not in _ALLOWED[self.status]:
            raise IllegalTransition(f"job {self.id} cannot go from {self.status} to {status}")
        return msgspec.structs.replace(self, status=status, updated_at=now, **changes)

    def dispatch(
        self,
        provider: str,
        now: datetime,
        *,
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> Job:
        return self._to(
            JobStatus.DISPATCHED,
            now,
            provider=provider,
            provider_job_id=None,
            submitted_at=None,
            attempts=self.attempts + 1,
            next_attempt_at=None,
            lease_owner=lease_owner,
            lease_expires_at=lease_until,
        )

    def accepted_by_provider(self, provider_job_id: str, now: datetime) -> Job:
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        if self.status is not JobStatus.DISPATCHED:
            raise IllegalTransition(f"job {self.id} is {self.status}, not dispatched")
        return msgspec.structs.replace(
            self, provider_job_id=provider_job_id, submitted_at=now, updated_at=now
        )

    def report_progress(self, progress: int, now: datetime) -> Job:
        progress = max(self.progress, min(99, max(0, progress)))
        if self.status is JobStatus.RUNNING:
            return msgspec.structs.replace(self, progress=progress, updated_at=now)
        return self._to(JobStatus.RUNNING, now, progress=progress)

    def succeed(self, asset_ids: tuple[uuid.UUID, ...], now: datetime) -> Job:
        if not asset_ids:
            raise InvalidInput("a succeeded job has at least one asset", field="assets")
        return self._to(JobStatus.SUCCEEDED, now, progress=100, asset_ids=asset_ids, error=None)

    def fail(self, error: JobError, now: datetime) -> Job:
        return self._to(JobStatus.FAILED, now, error=error, lease_owner=None, lease_expires_at=None)

    def dead_letter(self, error: JobError, now: datetime) -> Job:
        """Fail for good after the last attempt: kept for operators to inspect and re-run."""
        return msgspec.structs.replace(self.fail(error, now), dead_lettered_at=now)

    def cancel(self, now: datetime) -> Job:
        return self._to(JobStatus.CANCELLED, now, lease_owner=None, lease_expires_at=None)

    def handed_back(self, now: datetime) -> Job:
        """Back to the queue, due now, because the worker running it stopped (a deploy,
        a restart): not a failure, so its attempt is given back and its last error, if
        any, kept. Only for a job no provider is running (never submitted, or its
        provider's work ended with the worker's process)."""
        return self._to(
            JobStatus.QUEUED,
            now,
            attempts=max(0, self.attempts - 1),
            provider_job_id=None,
            submitted_at=None,
            progress=0,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )

    def lease_given_up(self, now: datetime) -> Job:
        """The worker stops following the job, which goes on at its provider: its lease
        ends now, so that another worker takes it over at once (and polls it on)."""
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        return msgspec.structs.replace(self, lease_expires_at=now, updated_at=now)

    def requeue(
        self,
        error: JobError,
        now: datetime,
        *,
        retry_at: datetime | None = None,
        count_attempt: bool = True,
    ) -> Job:
        """Back to the queue for another attempt, not before ``retry_at``.

        ``count_attempt=False``: the provider never took the job (it was unreachable),
        so the attempt is given back: jobs wait out an outage instead of dying of it.
        """
        return self._to(
            JobStatus.QUEUED,
            now,
            attempts=self.attempts if count_attempt else max(0, self.attempts - 1),
            error=error,
            provider_job_id=None,
            submitted_at=None,
            progress=0,
            next_attempt_at=retry_at,
            lease_owner=None,
            lease_expires_at=None,
        )
