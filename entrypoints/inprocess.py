"""The embedded default's worker: asyncio tasks in the API process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from adapters.memory.queue import InMemoryJobQueue
from core.services.processing import JobProcessor

log = logging.getLogger("genstudio.worker")


class InProcessWorker:
    def __init__(self, queue: InMemoryJobQueue, processor: JobProcessor, concurrency: int) -> None:
        self.queue = queue
        self.processor = processor
        self.concurrency = concurrency
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self) -> None:
        while True:
            job_id, _, _ = await self.queue.messages.get()
            try:
                await self.processor.process(job_id)
            except Exception:
                # the job stays in the database; the next start (or a reconciler)
                # picks it up again
                log.exception("job processing crashed", extra={"job_id": str(job_id)})

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def resume(self, job_ids: list[uuid.UUID]) -> None:
        for job_id in job_ids:
            await self.queue.enqueue(job_id, kind="image")
