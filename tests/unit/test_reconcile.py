"""The reconciler's wake-ups (core/services/reconcile.py) on memory adapters."""

from __future__ import annotations

import uuid

import pytest

from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.core.services.reconcile import Reconciler
from tests.unit.support import POLICY, Studio

#: a tick well inside ``redeliver_after``: a wake-up that waited that out would show
RECONCILE_INTERVAL = POLICY.redeliver_after_seconds / 3


class FailingQueue(InMemoryJobQueue):
    """Takes ``up_for`` wake-ups, then fails every one, as a Redis that went down."""

    def __init__(self, up_for: int) -> None:
        super().__init__()
        self.up_for = up_for

    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        if self.up_for <= 0:
            raise ConnectionError("Redis is down")
        self.up_for -= 1
        await super().enqueue(job_id, kind=kind, priority=priority)


async def test_wake_ups_that_failed_to_send_are_sent_by_the_next_tick() -> None:
    studio = Studio()
    user = await studio.user_with(100)
    jobs = {(await studio.submitted_job(user)).id for _ in range(4)}  # their messages lost
    queue = FailingQueue(up_for=1)
    reconciler = Reconciler(studio.factory, queue, studio.clock, policy=POLICY)

    with pytest.raises(ConnectionError):
        await reconciler.tick()  # one wake-up sent, then Redis went down
    (first,) = queue.enqueued

    queue.up_for = 100  # Redis is back
    studio.clock.advance(RECONCILE_INTERVAL)
    report = await reconciler.tick()

    assert report.woken == 3, "the unsent ones at the next tick, not redeliver_after later"
    assert set(queue.enqueued) == jobs and queue.enqueued.count(first) == 1
    studio.clock.advance(RECONCILE_INTERVAL)
    assert (await reconciler.tick()).woken == 0  # the sent ones wait out redeliver_after
