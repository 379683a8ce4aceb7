"""Tracking product analytics after commit, off the request's path (issue #20).

A use case calls ``track(uow, tracker, event)`` inside its unit of work. That only
registers an after-commit effect (a list append); once the transaction commits the
effect appends the event to this process's queue (no I/O) and the caller goes on. A
rolled-back unit sends nothing. A background task (one per process, started by the
first event) takes the queue in batches, reads which of the batch's users opted out
of analytics (``uow.social.analytics_opt_outs``: one read per batch) and hands the
others' events to the analytics port, whose adapter batches and sends them on its own
thread. ``aclose`` (the process's shutdown) sends what is queued within a bound.

Analytics is best effort: a process that dies loses what it had queued; a batch
whose opt-outs cannot be read is dropped rather than sent unchecked.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid

from genstudio.core.model.analytics import AnalyticsEvent
from genstudio.ports.analytics import Analytics
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("genstudio.analytics")


class Tracker:
    """``batch``: events handed over per opt-out read; ``queue_limit``: events waiting
    at most (beyond it new events are dropped and counted in ``dropped``)."""

    def __init__(
        self,
        sink: Analytics,
        uow_factory: UnitOfWorkFactory,
        *,
        batch: int = 200,
        queue_limit: int = 10_000,
        close_timeout: float = 5.0,
    ) -> None:
        self.sink = sink
        self.uow_factory = uow_factory
        self.batch = batch
        self.queue_limit = queue_limit
        self.close_timeout = close_timeout
        self.dropped = 0
        self._queue: collections.deque[AnalyticsEvent] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._closed = False

    def track(self, uow: UnitOfWork, event: AnalyticsEvent) -> None:
        """Queue ``event`` once ``uow`` commits (dropped with it on a rollback)."""

        async def hand_over() -> None:
            self._enqueue(event)

        uow.after_commit(hand_over)

    def _enqueue(self, event: AnalyticsEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.queue_limit:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("analytics queue full: %d events dropped so far", self.dropped)
            return
        self._start()
        self._queue.append(event)
        self._idle.clear()
        self._wake.set()

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): new primitives bound to it
            self._loop = loop
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._task = None
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._pump(), name="genstudio-analytics")

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = [self._queue.popleft() for _ in range(min(self.batch, len(self._queue)))]
                try:
                    await self._hand_over(batch)
                except Exception:  # never let the task die: later events still go
                    self.dropped += len(batch)
                    log.exception("analytics: %d events dropped", len(batch))
            self._idle.set()

    async def _hand_over(self, batch: list[AnalyticsEvent]) -> None:
        users = {event.user_id for event in batch}
        try:
            async with self.uow_factory() as uow:
                opted_out: set[uuid.UUID] = await uow.social.analytics_opt_outs(users)
        except Exception:
            # unchecked events are not sent: an opt-out must hold even when we cannot read it
            self.dropped += len(batch)
            log.warning("analytics: opt-outs unreadable, %d events dropped", len(batch))
            return
        for event in batch:
            if event.user_id in opted_out:
                continue
            try:
                self.sink.capture(event)
            except Exception:
                log.exception("analytics: capture failed")

    async def drain(self) -> None:
        """Wait until every event queued so far was handed to the port (or dropped)."""
        if self._queue and self._loop is asyncio.get_running_loop():
            await self._idle.wait()

    async def aclose(self) -> None:
        """Hand over what is queued (at most ``close_timeout`` seconds), stop the task,
        then close the port (which sends what it holds). Never raises."""
        try:
            await asyncio.wait_for(self.drain(), self.close_timeout)
        except TimeoutError:
            log.warning("analytics: %d events not handed over at shutdown", len(self._queue))
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.sink.aclose()
        except Exception:
            log.exception("analytics: closing failed")


def track(uow: UnitOfWork, tracker: Tracker | None, event: AnalyticsEvent | None) -> None:
    """``tracker.track(uow, event)`` where analytics is on and there is an event."""
    if tracker is not None and event is not None:
        tracker.track(uow, event)
