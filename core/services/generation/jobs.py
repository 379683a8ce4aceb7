"""A job after submission: cancel, wake (a provider's webhook), re-run a dead letter.

Reads are in ``core.services.queries``."""

from __future__ import annotations

import logging
import uuid

from genstudio.core.model.errors import NotFound
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.services.credits import place_hold, release_hold
from genstudio.core.services.realtime import credits_changed, job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.queue import JobQueue
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")


def owned(job: Job | None, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The job if it is the user's. Raises NotFound for another user's job too (not
    Forbidden: whether a job id exists is nobody else's business)."""
    if job is None or job.user_id != user_id:
        raise NotFound(f"no job {job_id}", field="job_id")
    return job


async def cancel_job(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    realtime: RealtimePublisher | None = None,
) -> Job:
    """Cancel a job that has not finished and release its hold, in one commit.

    Raises JobFinished if it already ended. The worker notices the cancellation
    and stops the provider's work.
    """
    now = clock.now()
    async with uow_factory() as uow:
        job = owned(await uow.jobs.get(job_id, lock=True), user_id, job_id)
        job = await uow.jobs.update(job.cancel(now))
        if job.hold_id is not None:
            await release_hold(uow, job.hold_id, now)
        await uow.job_events.add(
            JobEvent.new(
                job.id, user_id, JobEventKind.CANCELLED, "cancelled; credits returned", now
            )
        )
        job_updated(uow, realtime, job)
        credits_changed(uow, realtime)
        await uow.commit()
    return job


async def wake(queue: JobQueue, job: Job) -> None:
    """Send the job's wake-up; a queue that is down is logged, not raised."""
    try:
        await queue.enqueue(job.id, kind=job.kind.value, priority=job.priority)
    except Exception as exc:  # the queue's own errors are adapter-specific
        log.warning(
            "could not enqueue; the reconciler will",
            extra={"job_id": str(job.id), "error": f"{type(exc).__name__}: {exc}"},
        )


async def wake_on_notice(
    uow_factory: UnitOfWorkFactory, queue: JobQueue, *, job_id: uuid.UUID
) -> Job:
    """A provider's notice that the job may have moved on (Runpod's webhook): wake a
    worker to re-read the job's status from the provider, the only source it trusts.

    Returns the job as it is; a finished one is left alone (nothing is woken). Raises
    NotFound for an unknown job. The wake-up is sent after the commit; a queue that is
    down is logged, and the reconciler wakes the job instead.
    """
    async with uow_factory() as uow:
        job = await uow.jobs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id}", field="job")
        if not job.status.terminal:
            uow.after_commit(lambda: wake(queue, job))
        await uow.commit()
    return job


async def rerun_dead_letter(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    *,
    job_id: uuid.UUID,
    realtime: RealtimePublisher | None = None,
) -> Job:
    """An operator re-runs a dead-lettered job as a new job with a new hold.
    ``realtime``: its owner's app hears of the new job (``job.updated``, queued) and of
    the credits it holds (``credits.changed``) after the commit.

    Idempotent: the new job's id derives from the old one, so a second call returns
    the same re-run. Raises NotFound unless the job was dead-lettered, and
    InsufficientCredits if the owner can no longer pay for it.
    """
    new_id = uuid.uuid5(job_id, "rerun")
    now = clock.now()
    async with uow_factory() as uow:
        old = await uow.jobs.get(job_id, lock=True)
        if old is None or old.dead_lettered_at is None:
            raise NotFound(f"no dead-lettered job {job_id}", field="job_id")
        existing = await uow.jobs.get(new_id)
        if existing is not None:
            return existing
        hold = await place_hold(
            uow, user_id=old.user_id, amount=old.cost, reference=f"job:{new_id}", now=now
        )
        job = Job(
            id=new_id,
            user_id=old.user_id,
            kind=old.kind,
            model_id=old.model_id,
            params=old.params,
            cost=old.cost,
            hold_id=hold.id,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
            priority=old.priority,
            rerun_of=old.id,
        )
        await uow.jobs.add(job)
        await uow.job_events.add(
            JobEvent.new(old.id, old.user_id, JobEventKind.RERUN, f"re-run as job {new_id}", now)
        )
        await uow.job_events.add(
            JobEvent.new(new_id, old.user_id, JobEventKind.QUEUED, f"re-run of job {old.id}", now)
        )
        uow.after_commit(lambda: wake(queue, job))
        job_updated(uow, realtime, job)
        credits_changed(uow, realtime)
        await uow.commit()
    return job
