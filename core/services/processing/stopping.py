"""A graceful stop (SIGTERM, a deploy): claim nothing more, let the jobs in flight run
for a grace period, then cancel them and hand each back.

A job left at a provider that outlives this process (``GpuProvider.durable``) keeps
going there: its lease ends at once and another worker takes it over and polls it on.
Any other (not yet submitted, or rendering in this process) goes back to the queue,
due now, its attempt given back: a deploy is not a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

from genstudio.core.services.processing.failures import Failures
from genstudio.core.services.realtime import job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")

_T = TypeVar("_T")


class InFlight:
    """The jobs this worker is running, each in its task, and whether it is stopping."""

    def __init__(self) -> None:
        self.stopping = False
        self._running: dict[uuid.UUID, asyncio.Task[object]] = {}  # job -> task running it
        self._interrupted: set[uuid.UUID] = set()
        self._idle = asyncio.Event()  # set while no job is running
        self._idle.set()

    async def run(self, job_id: uuid.UUID, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run the job's ``work`` in the current task, known as running until it ends;
        a job whose work is cancelled (a stop) is remembered to be handed back."""
        task = asyncio.current_task()
        assert task is not None  # a coroutine always runs in a task
        self._running[job_id] = task
        self._idle.clear()
        try:
            return await work()
        except asyncio.CancelledError:
            self._interrupted.add(job_id)  # still leased to this worker: to hand back
            raise
        finally:
            self._running.pop(job_id, None)
            if not self._running:
                self._idle.set()

    async def interrupt(self, grace: float) -> set[uuid.UUID]:
        """Stop claiming, wait up to ``grace`` seconds for the running jobs to end, then
        cancel the tasks still running them. Returns the jobs they left behind."""
        self.stopping = True
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        interrupted, self._interrupted = self._interrupted, set()
        return interrupted


class HandBack:
    """Hands an interrupted job back: left at its durable provider, or requeued.
    ``realtime``: a job requeued is announced (``job.updated``, queued) after the
    commit; one left at its provider runs on unchanged, and is not."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        providers: Mapping[str, GpuProvider],
        failures: Failures,
        worker_id: str,
        *,
        realtime: RealtimePublisher | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.providers = providers
        self.failures = failures
        self.worker_id = worker_id
        self.realtime = realtime

    async def all(self, job_ids: set[uuid.UUID]) -> int:
        """Hand each job back; returns how many were. One that cannot be (the database
        is down) is logged: its lease runs out, and another worker takes it over then."""
        handed = 0
        for job_id in job_ids:
            try:
                handed += await self.one(job_id)
            except Exception:
                log.exception("could not hand the job back", extra={"job_id": str(job_id)})
        return handed

    async def one(self, job_id: uuid.UUID) -> int:
        """1 when the job was handed back; 0 when it ended or is no longer this worker's."""
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal or job.lease_owner != self.worker_id:
                return 0
            gpu = self.providers.get(job.provider or "")
            before = job
            if job.provider_job_id is not None and gpu is not None and gpu.durable:
                job = await uow.jobs.update(job.lease_given_up(now))
                how = "left at its provider for another worker to follow"
            else:
                await self.failures.cancel_at_provider(job)  # its work ends with this process
                job = await uow.jobs.update(job.handed_back(now))
                how = "back in the queue, its attempt given back"
            job_updated(uow, self.realtime, job, before)  # told only if status/progress moved
            await uow.commit()
        log.info("job handed back on stopping", extra={"job_id": str(job_id), "how": how})
        return 1
