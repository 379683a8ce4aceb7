"""A worker's hold on the jobs it runs: leases, and changes made only while holding one.

Every change a worker makes to a job it runs is a versioned update of the locked row,
made only if the job is still this worker's: a worker presumed dead (its lease ran
out) whose job was taken over stops at its next change (``LeaseLost``), and a job
that ended meanwhile (the user cancelled it) stops it too (``Finished``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from genstudio.core.model.errors import ConcurrencyConflict
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY, Notifier
from genstudio.core.services.realtime import job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import Pending
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead): stop touching it."""


class Finished(Exception):
    """The job ended (e.g. the user cancelled it) while this worker was on it."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.status}")
        self.job = job


class Leases:
    """The leases of one worker (``worker_id``) and the changes made under them."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: QueuePolicy,
        worker_id: str,
        *,
        realtime: RealtimePublisher | None = None,
        notifier: Notifier = ROWS_ONLY,
    ) -> None:
        self.uow_factory = uow_factory
        self.notifier = notifier
        self.clock = clock
        self.policy = policy
        self.worker_id = worker_id
        self.realtime = realtime

    def until(self, now: datetime) -> datetime:
        """When a lease taken or renewed ``now`` runs out."""
        return now + timedelta(seconds=self.policy.lease_seconds)

    async def change(self, job_id: uuid.UUID, change: Callable[[Job], Job]) -> Job:
        """Apply ``change`` to the locked job if this worker still holds it.

        Raises LeaseLost (the job is gone, someone else's, or was changed meanwhile)
        or Finished (it ended).
        """
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None:
                raise LeaseLost()
            if job.status.terminal:
                raise Finished(job)
            if job.lease_owner != self.worker_id:
                raise LeaseLost()
            before = job
            try:
                job = await uow.jobs.update(change(job))
            except ConcurrencyConflict:
                raise LeaseLost() from None
            # progress, running, back in the queue: told; a lease renewal: not
            job_updated(uow, self.realtime, job, before)
            # training at 25/50/75 %: told in the progress's transaction (issue #18)
            told = events.training_progress(job, before.progress)
            if told is not None:
                await self.notifier.tell(uow, told, self.clock.now())
            await uow.commit()
            return job

    async def report(self, job: Job, status: Pending) -> Job:
        """Record the provider's progress, and renew the lease when it is half spent.
        Raises LeaseLost or Finished as ``change`` does."""
        now = self.clock.now()
        renew = job.lease_expires_at is None or (
            (job.lease_expires_at - now).total_seconds() < self.policy.lease_seconds / 2
        )
        moves = status.started and (
            job.status is JobStatus.DISPATCHED or status.progress > job.progress
        )
        if not (renew or moves):
            return job

        def progressed(current: Job) -> Job:
            t = self.clock.now()
            if moves:
                current = current.report_progress(status.progress, t)
            return current.leased(self.worker_id, self.until(t), t)

        return await self.change(job.id, progressed)

    async def keep(self, job_id: uuid.UUID) -> None:
        """Renew the job's lease every third of it (in real time) until cancelled, or
        until the job is lost or ended."""

        def renew(job: Job) -> Job:
            now = self.clock.now()
            return job.leased(self.worker_id, self.until(now), now)

        while True:
            await asyncio.sleep(self.policy.lease_seconds / 3)
            try:
                await self.change(job_id, renew)
            except (LeaseLost, Finished):
                return
            except Exception:  # the database, briefly: the next beat tries again
                log.exception("renewing the lease failed", extra={"job_id": str(job_id)})
