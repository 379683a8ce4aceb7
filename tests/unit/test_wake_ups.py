"""A wake-up runs due jobs of its kind up to a budget (entrypoints/inprocess.py
``drain_woken``, used by both the Taskiq worker and the in-process one). Stopped at the
budget, it sends a fresh wake-up: a burst of jobs whose messages were spent by
consumers that ran other jobs must not wait for the reconciler (with no scheduler,
for ever: bench/worker_memory.py once saw 2 of 30 jobs stranded that way)."""

from __future__ import annotations

import uuid
from typing import Any, cast

from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.entrypoints.inprocess import DRAIN_BUDGET, drain_woken


class Backlog:
    """Stands in for JobProcessor.drain: ``due`` jobs of one kind, run back to back."""

    def __init__(self, due: int) -> None:
        self.due = due

    async def drain(self, kind: str, *, budget: int = 10) -> int:
        ran = min(self.due, budget)
        self.due -= ran
        return ran


async def test_a_wake_up_at_its_budget_leaves_a_wake_up_for_the_rest() -> None:
    backlog, queue = Backlog(due=2 * DRAIN_BUDGET + 5), InMemoryJobQueue()
    woken_by = uuid.uuid4()
    processor = cast(JobProcessor, backlog)
    assert await drain_woken(processor, queue, woken_by, "image") == DRAIN_BUDGET
    assert queue.messages.get_nowait() == (woken_by, "image", 0)
    assert queue.messages.empty()
    # each fresh wake-up goes on where the last stopped, until the backlog is empty
    runs = []
    while backlog.due:
        runs.append(await drain_woken(processor, queue, woken_by, "image"))
    assert runs == [DRAIN_BUDGET, 5]
    assert queue.drain() == [woken_by]  # the last one, short of its budget, sent none


async def test_a_wake_up_that_ran_out_of_jobs_sends_none() -> None:
    queue = InMemoryJobQueue()
    for due in (0, 1, DRAIN_BUDGET - 1):
        assert await drain_woken(cast(Any, Backlog(due)), queue, uuid.uuid4(), "video") == due
    assert queue.drain() == []
