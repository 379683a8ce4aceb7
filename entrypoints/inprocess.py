"""The embedded default's worker: asyncio tasks in the API process.

The same mechanics as the Taskiq worker: a message wakes a consumer, which claims
the most urgent due job of that kind from Postgres; a reconciler loop re-sends
wake-ups for what is due (retries after their backoff, jobs of a dead process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable

from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.reconcile import Reconciler
from genstudio.ports.queue import JobQueue

log = logging.getLogger("genstudio.worker")

#: how long a stopping process lets its jobs in flight run on before handing them back
STOP_GRACE_SECONDS = 5.0
#: jobs one wake-up runs back to back before it hands over to a fresh wake-up (so one
#: message cannot keep a consumer for ever while other kinds' messages wait)
DRAIN_BUDGET = 10


async def drain_woken(
    processor: JobProcessor, queue: JobQueue, job_id: uuid.UUID, kind: str
) -> int:
    """A wake-up's work, for both workers: due jobs of ``kind`` back to back up to the
    budget. Stopped at the budget rather than for want of due jobs, it sends a fresh
    wake-up: the messages of the jobs it ran are spent, and the rest would otherwise
    wait for the reconciler (for ever where no scheduler runs one)."""
    ran = await processor.drain(kind, budget=DRAIN_BUDGET)
    if ran >= DRAIN_BUDGET:
        await queue.enqueue(job_id, kind=kind)
    return ran


class InProcessWorker:
    def __init__(
        self,
        queue: InMemoryJobQueue,
        processor: JobProcessor,
        reconciler: Reconciler,
        *,
        concurrency: int,
        reconcile_interval: float,
        maintenance: Callable[[], Awaitable[None]] | None = None,
        maintenance_interval: float = 60.0,
    ) -> None:
        self.maintenance = maintenance
        self.maintenance_interval = maintenance_interval
        self.queue = queue
        self.processor = processor
        self.reconciler = reconciler
        self.concurrency = concurrency
        self.reconcile_interval = reconcile_interval
        self._tasks: list[asyncio.Task[None]] = []

    async def _consume(self) -> None:
        while True:
            job_id, kind, _ = await self.queue.messages.get()
            try:
                await drain_woken(self.processor, self.queue, job_id, kind)
            except Exception:
                # the processor fails a job that crashes (with its id in the log); this
                # is the claim itself failing (the database): the reconciler wakes
                # a consumer again. The message's job is only the one that woke it.
                log.exception("draining failed", extra={"kind": kind, "woken_by": str(job_id)})

    async def _reconcile(self) -> None:
        fresh_start = True
        while True:
            try:
                await self.reconciler.tick(fresh_start=fresh_start)
                fresh_start = False
            except Exception:
                log.exception("reconciler tick failed")
            await asyncio.sleep(self.reconcile_interval)

    async def _maintain(self) -> None:
        assert self.maintenance is not None
        while True:
            try:
                await self.maintenance()
            except Exception:
                log.exception("store maintenance failed")
            await asyncio.sleep(self.maintenance_interval)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._consume()) for _ in range(self.concurrency)]
        self._tasks.append(asyncio.create_task(self._reconcile()))
        if self.maintenance is not None:
            self._tasks.append(asyncio.create_task(self._maintain()))

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Claim nothing more, wake nothing more; give the jobs in flight ``grace``
        seconds, then hand them back (JobProcessor.stop): a restart does not use up
        their attempts."""
        self.processor.stop_claiming()
        consumers, others = self._tasks[: self.concurrency], self._tasks[self.concurrency :]
        await _cancelled(others)
        handed = await self.processor.stop(grace)
        await _cancelled(consumers)  # those still waiting for a message
        self._tasks = []
        if handed:
            log.info("worker stopped; jobs handed back", extra={"count": handed})


async def _cancelled(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
