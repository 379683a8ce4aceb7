"""The reconciler: Postgres says what is due; this makes sure a worker hears about it.

Runs every few seconds (the Taskiq scheduler in production, a loop in the embedded
default). It re-sends wake-ups for due jobs whose message was lost (Redis flushed
or restarted), whose retry time has come, or whose worker died (lease expired),
and refreshes each GPU provider's health for the router. Given the media storage, it
also deletes orphaned uploads (stored for a submission that never committed).
Idempotent: a wake-up too many only makes a worker find nothing to claim.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta

import msgspec

from genstudio.core.model.jobs import JobStatus
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.model.routing import ProviderHealth, ProviderRouter
from genstudio.core.services.generation.uploads import sweep_orphaned_uploads
from genstudio.core.services.notifications.delivery import PushDelivery
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.queue import JobQueue
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.reconciler")

HEALTH_TIMEOUT = 5.0


class ReconcileReport(msgspec.Struct, frozen=True, kw_only=True):
    woken: int
    abandoned: int
    health: dict[str, bool]
    orphans_swept: int = 0
    pushes_handled: int = 0


class Reconciler:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        queue: JobQueue,
        clock: Clock,
        *,
        policy: QueuePolicy | None = None,
        providers: Mapping[str, GpuProvider] | None = None,
        router: ProviderRouter | None = None,
        storage: MediaStorage | None = None,
        notifications: PushDelivery | None = None,
        batch: int = 500,
    ) -> None:
        self.uow_factory = uow_factory
        self.queue = queue
        self.clock = clock
        self.policy = policy or QueuePolicy()
        self.providers = dict(providers or {})
        self.router = router
        self.storage = storage
        self.notifications = notifications
        self.batch = batch

    async def tick(self, *, fresh_start: bool = False) -> ReconcileReport:
        """One pass. ``fresh_start``: this process just started and holds no messages,
        so every due job gets a wake-up, however recently one was sent."""
        # providers' health first: a wake-up for a provider known to be down only
        # makes the job wait, without spending one of its attempts
        health = await self._check_health()
        now = self.clock.now()
        stale_before = (
            now if fresh_start else now - timedelta(seconds=self.policy.redeliver_after_seconds)
        )
        async with self.uow_factory() as uow:
            jobs = await uow.jobs.needing_wakeup(
                now=now, stale_before=stale_before, limit=self.batch
            )
            # marked, and committed, before sending: a worker woken by a message claims
            # with SKIP LOCKED, and would pass over a row the mark still held locked
            await uow.jobs.mark_enqueued([j.id for j in jobs], now)
            await uow.commit()
        abandoned = sent = 0
        try:
            for job in jobs:
                if job.status is not JobStatus.QUEUED:
                    abandoned += 1
                    log.warning(
                        "waking a worker for an abandoned job",
                        extra={
                            "job_id": str(job.id),
                            "status": job.status.value,
                            "lease_owner": job.lease_owner,
                            "lease_expires_at": str(job.lease_expires_at),
                        },
                    )
                await self.queue.enqueue(job.id, kind=job.kind.value, priority=job.priority)
                sent += 1
        except BaseException:
            # a send failed (Redis down) or the tick was stopped: the rest of the batch
            # never reached the queue. Left marked, it would wait out
            # redeliver_after_seconds as if it had been sent; unmarked, the next tick
            # sends it (the failed send may have got through: a wake-up too many).
            await self._forget_wakeups([j.id for j in jobs[sent:]])
            raise
        if jobs:
            log.info("reconciled", extra={"woken": len(jobs), "abandoned": abandoned})
        swept = 0
        if self.storage is not None:
            swept = await sweep_orphaned_uploads(self.uow_factory, self.storage, self.clock)
        pushes = 0
        if self.notifications is not None:
            # the push outbox: what no after-commit kick delivered (the process died
            # after the commit, a lease ran out), what quiet hours held, retries
            pushes = (await self.notifications.deliver_due()).handled
        return ReconcileReport(
            woken=len(jobs),
            abandoned=abandoned,
            health=health,
            orphans_swept=swept,
            pushes_handled=pushes,
        )

    async def _forget_wakeups(self, job_ids: list[uuid.UUID]) -> None:
        try:
            async with self.uow_factory() as uow:
                await uow.jobs.mark_enqueued(job_ids, None)
                await uow.commit()
        except Exception:  # the database too: these wait out redeliver_after_seconds
            log.exception("could not unmark unsent wake-ups", extra={"jobs": len(job_ids)})

    async def _check_health(self) -> dict[str, bool]:
        results = await provider_health(self.providers)
        now = self.clock.now()
        if self.router is not None:
            for name, health in results.items():
                if name in self.router.providers:
                    self.router.record_health(name, health, now)
        return {name: health.healthy for name, health in results.items()}


async def provider_health(providers: Mapping[str, GpuProvider]) -> dict[str, ProviderHealth]:
    """Every provider's health, asked all at once, each for at most HEALTH_TIMEOUT
    seconds: one that does not answer (or fails to) is unhealthy."""

    async def one(gpu: GpuProvider) -> ProviderHealth:
        try:
            return await asyncio.wait_for(gpu.health(), HEALTH_TIMEOUT)
        except Exception as exc:
            return ProviderHealth(healthy=False, detail=f"{type(exc).__name__}: {exc}")

    results = await asyncio.gather(*(one(gpu) for gpu in providers.values()))
    return dict(zip(providers, results, strict=True))
