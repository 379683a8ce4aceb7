"""A failed attempt: retried with backoff, dead-lettered, or failed for good.

Whichever way a job ends badly, its hold is released exactly once (closing a hold is
conditional on it being open), and the user gets one event saying what happened.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

from genstudio.core.model.analytics import job_ended
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.jobs import FailureReason, Job, JobError
from genstudio.core.model.notifications import EventKind
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.model.routing import ProviderRouter
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import release_hold
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY, Notifier
from genstudio.core.services.processing.leases import Finished, Leases
from genstudio.core.services.realtime import credits_changed, job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")


class Failures:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: QueuePolicy,
        router: ProviderRouter,
        providers: Mapping[str, GpuProvider],
        leases: Leases,
        notifier: Notifier = ROWS_ONLY,
        *,
        realtime: RealtimePublisher | None = None,
        analytics: Tracker | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.policy = policy
        self.router = router
        self.providers = providers
        self.leases = leases
        self.notifier = notifier
        self.realtime = realtime
        self.analytics = analytics  # issue #20: the job's end, after commit

    async def fail(self, job_id: uuid.UUID, error: JobError) -> Job | None:
        """A failed attempt: retry later, dead-letter, or fail; the hold is released once.

        Retried (back to the queue with backoff) when the provider was at fault and
        attempts remain; dead-lettered when they are used up; failed for good on a
        content refusal or an internal error. A finished job is returned as it is.
        """
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job
            if job.provider is not None:
                self.router.record_error(job.provider, error, now)
            retry = self.policy.retry
            if retry.retryable(error.reason) and job.attempts < retry.attempts_for(job.kind.value):
                at = retry.next_attempt_at(job.attempts, now)
                job = await uow.jobs.update(job.requeue(error, now, retry_at=at))
                event, message = JobEventKind.RETRYING, f"attempt {job.attempts} failed; retrying"
            else:
                dead = retry.retryable(error.reason)
                job = await uow.jobs.update(
                    job.dead_letter(error, now) if dead else job.fail(error, now)
                )
                if job.hold_id is not None:
                    await release_hold(uow, job.hold_id, now)
                event = JobEventKind.DEAD_LETTERED if dead else JobEventKind.FAILED
                message = (
                    f"failed after {job.attempts} attempts; your credits were returned"
                    if dead
                    else f"{error.message}; your credits were returned"
                )
                told = EventKind.JOB_DEAD_LETTERED if dead else EventKind.JOB_FAILED
                # the outbox rows commit with the failure (issue #18)
                await self.notifier.tell(uow, events.job_ended(job, told), now)
            await uow.job_events.add(JobEvent.new(job.id, job.user_id, event, message, now))
            job_updated(uow, self.realtime, job)
            credits_changed(uow, self.realtime)  # the released hold, when it ended
            track(uow, self.analytics, job_ended(job))  # failed for good only
            await uow.commit()
        _log_failure(job, error, event)
        return job

    async def not_taken(self, job: Job, gpu: GpuProvider, reason: str) -> Job:
        """The provider could not be reached to take the job: back to the queue without
        spending an attempt. The provider's breaker counts the failure, so after a few
        the router stops choosing it: jobs fail over, or wait for it to come back.
        Raises LeaseLost when the job is no longer this worker's."""
        now = self.clock.now()
        self.router.record_failure(gpu.name, now)
        error = JobError(FailureReason.INFRASTRUCTURE, f"provider unavailable: {reason}")
        retry_at = self.policy.retry.next_attempt_at(1, now)

        def back(current: Job) -> Job:
            return current.requeue(error, self.clock.now(), retry_at=retry_at, count_attempt=False)

        try:
            job = await self.leases.change(job.id, back)
        except Finished as finished:
            return finished.job
        log.warning(
            "provider unavailable; job back in the queue",
            extra={"job_id": str(job.id), "provider": error.message[:200]},
        )
        return job

    async def crashed(self, job_id: uuid.UUID, exc: Exception) -> Job | None:
        """A fault of ours or of an adapter (a bug, an answer it did not expect): the
        attempt fails, and the credits come back. Left to its lease, the job would be
        taken over and crash again and again, its credits held for ever."""
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is not None:  # its work at the provider is not followed any more
            await self.cancel_at_provider(job)
        error = JobError(FailureReason.INTERNAL, f"processing failed ({type(exc).__name__})")
        return await self.fail(job_id, error)

    async def cancel_at_provider(self, job: Job) -> None:
        """Stop the job's work at its provider, if it has any there; best effort (a
        failure is logged): the job is being put back or failed either way."""
        gpu = self.providers.get(job.provider or "")
        if job.provider_job_id is None or gpu is None:
            return
        try:
            await gpu.cancel(job.provider_job_id)
        except Exception:
            log.exception("cancelling at the provider failed", extra={"job_id": str(job.id)})


def _log_failure(job: Job, error: JobError, event: JobEventKind) -> None:
    log.warning(
        "job attempt failed" if event is JobEventKind.RETRYING else "job failed",
        extra={
            "job_id": str(job.id),
            "reason": error.reason.value,
            "error": error.message,
            "outcome": event.value,
            "attempt": job.attempts,
            "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
        },
    )
