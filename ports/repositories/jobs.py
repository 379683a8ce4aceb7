"""Jobs and their events: the queue's truth."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

from genstudio.core.model.events import JobEvent
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.queueing import QueuePolicy, QueueStats


class JobRepository(Protocol):
    async def add(self, job: Job) -> None: ...

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        """``lock=True`` holds the row until the unit of work ends."""
        ...

    async def update(self, job: Job) -> Job:
        """Store ``job`` (every field, ``submitted_at`` included) if its version is still
        the stored one; return it with version+1.

        Raises ConcurrencyConflict if another writer updated the job first.
        """
        ...

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]: ...

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        """The job a worker should take next, row-locked until the unit of work ends.

        Candidates: jobs of ``kind`` that are due (queued, past ``next_attempt_at``)
        or abandoned (dispatched/running with an expired lease). Rows locked by
        another unit of work are skipped, not waited for. A due job is skipped while
        its owner already has ``policy.per_user_in_flight`` jobs in flight (counted
        exactly, even under concurrent claims). Highest ``policy.priority.score``
        first, then oldest.
        """
        ...

    async def needing_wakeup(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> list[Job]:
        """Due jobs whose last wake-up message was sent before ``stale_before``, before
        their retry time (it was for the attempt before), or never; and abandoned jobs:
        what the reconciler re-sends to the queue."""
        ...

    async def mark_enqueued(self, job_ids: list[uuid.UUID], at: datetime | None) -> None:
        """Record that the jobs' wake-ups were sent at ``at`` (not a domain change: no
        version bump). ``None`` forgets it, as if none had been sent: a wake-up that
        never reached the queue, which the next ``needing_wakeup`` returns again."""
        ...

    async def dead_letters(self, *, limit: int) -> list[Job]:
        """Dead-lettered jobs, newest first."""
        ...

    async def stats(self, *, now: datetime, windows: dict[str, timedelta]) -> QueueStats:
        """The queue as operators see it: per kind and priority, the queued jobs, those
        of them due, and how long the longest-waiting due job has waited since it became
        due (``next_attempt_at``, else ``created_at``; 0 when none is due); per kind, the
        jobs in flight, the dead letters, and those that succeeded and failed (last
        changed) within each window."""
        ...


class JobEventRepository(Protocol):
    async def add(self, event: JobEvent) -> None: ...

    async def list_for_job(self, job_id: uuid.UUID) -> list[JobEvent]:
        """Oldest first."""
        ...
