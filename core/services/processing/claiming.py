"""Claiming the next job of a kind: the most urgent due one, or one whose worker died.

A claim is one unit of work: the repository picks the job (``FOR UPDATE SKIP
LOCKED``, the priority score, the per-user limit), and this worker dispatches it to
the provider the router picks, or takes over the abandoned work, under a lease.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.model.routing import ProviderRouter, is_provider_fault
from genstudio.core.services.processing.leases import Leases
from genstudio.core.services.realtime import job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")

#: how long a job waits when no provider is available (all breakers open)
NO_PROVIDER_DELAY = timedelta(seconds=5)


class Claims:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        policy: QueuePolicy,
        router: ProviderRouter,
        leases: Leases,
        *,
        realtime: RealtimePublisher | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.policy = policy
        self.router = router
        self.leases = leases
        self.realtime = realtime

    async def claim(self, kind: str) -> Job | None:
        """The job of ``kind`` this worker now holds, committed; None when nothing was
        claimable. A job claimed while no provider is available comes back postponed
        and not leased: the caller leaves it."""
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.claim_next(kind, now=now, policy=self.policy)
            if job is None:
                return None
            before = job
            job = await self._take(uow, job, now)
            job_updated(uow, self.realtime, job, before)
            await uow.commit()
        return job

    async def _take(self, uow: UnitOfWork, job: Job, now: datetime) -> Job:
        worker_id = self.leases.worker_id
        until = self.leases.until(now)
        if job.status is JobStatus.QUEUED:
            provider = self._choose(job, now)
            if provider is None:
                # every provider is down or tripped: wait, without using an attempt
                log.warning("no GPU provider available", extra={"job_id": str(job.id)})
                return await uow.jobs.update(job.postpone(now + NO_PROVIDER_DELAY, now))
            job = job.dispatch(provider, now, lease_owner=worker_id, lease_until=until)
            log.info(
                "job dispatched",
                extra={"job_id": str(job.id), "provider": provider, "attempt": job.attempts},
            )
        else:
            log.warning(
                "taking over an abandoned job",
                extra={"job_id": str(job.id), "previous_owner": job.lease_owner},
            )
            job = job.leased(worker_id, until, now)
        return await uow.jobs.update(job)

    def _choose(self, job: Job, now: datetime) -> str | None:
        """The router's pick; after a provider fault, another provider if one is available."""
        failed_on = (
            (job.provider,)
            if job.provider is not None and job.error is not None and is_provider_fault(job.error)
            else ()
        )
        return self.router.choose(job.model_id, now, exclude=failed_on) or (
            self.router.choose(job.model_id, now) if failed_on else None
        )
