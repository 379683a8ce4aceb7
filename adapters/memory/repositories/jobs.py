"""Jobs and job events in memory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import ConcurrencyConflict
from genstudio.core.model.events import JobEvent
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.queueing import KindStats, QueueDepth, QueuePolicy, QueueStats


class InMemoryJobs(_Repo):
    async def add(self, job: Job) -> None:
        self._d.jobs[job.id] = job

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        if lock:
            await self._uow.acquire(("job", job_id))
        return self._d.jobs.get(job_id)

    async def update(self, job: Job) -> Job:
        stored = self._d.jobs.get(job.id)
        if stored is None or stored.version != job.version:
            raise ConcurrencyConflict(f"job {job.id} changed underneath")
        job = msgspec.structs.replace(job, version=job.version + 1)
        self._d.jobs[job.id] = job
        return job

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]:
        found = [j for j in self._d.jobs.values() if j.status in statuses]
        return sorted(found, key=lambda j: j.created_at)[:limit]

    def _locked_by_other(self, job_id: uuid.UUID) -> bool:
        key = ("job", job_id)
        return key not in self._uow.held and self._uow.store.lock_for(key).locked()

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        candidates = [
            j
            for j in self._d.jobs.values()
            if j.kind.value == kind and (j.is_due(now) or j.is_abandoned(now))
        ]
        candidates.sort(key=lambda j: (-policy.priority.score(j, now), j.created_at))
        for job in candidates:
            if self._locked_by_other(job.id):
                continue  # SKIP LOCKED
            await self._uow.acquire(("job", job.id))
            job = self._d.jobs[job.id]  # re-read under the lock
            if not (job.is_due(now) or job.is_abandoned(now)):
                continue
            if job.status is JobStatus.QUEUED:
                # count the owner's jobs in flight under a per-user lock, so two
                # concurrent claims cannot both take the last slot
                await self._uow.acquire(("in-flight", job.user_id))
                in_flight = sum(
                    1
                    for j in self._d.jobs.values()
                    if j.user_id == job.user_id and j.status in _IN_FLIGHT
                )
                if in_flight >= policy.per_user_in_flight:
                    continue
            return job
        return None

    async def needing_wakeup(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> list[Job]:
        d = self._d
        found = [
            j
            for j in d.jobs.values()
            if (j.is_due(now) and _wake_up_stale(d.enqueued_at.get(j.id), j, stale_before))
            or j.is_abandoned(now)
        ]
        return sorted(found, key=lambda j: j.created_at)[:limit]

    async def mark_enqueued(self, job_ids: list[uuid.UUID], at: datetime | None) -> None:
        for job_id in job_ids:
            if at is None:
                self._d.enqueued_at.pop(job_id, None)
            else:
                self._d.enqueued_at[job_id] = at

    async def dead_letters(self, *, limit: int) -> list[Job]:
        found = [j for j in self._d.jobs.values() if j.dead_lettered_at is not None]
        return sorted(found, key=lambda j: j.dead_lettered_at or _EPOCH, reverse=True)[:limit]

    async def stats(self, *, now: datetime, windows: dict[str, timedelta]) -> QueueStats:
        jobs = list(self._d.jobs.values())
        depths: dict[tuple[str, int], list[Job]] = {}
        for j in jobs:
            if j.status is JobStatus.QUEUED:
                depths.setdefault((j.kind.value, j.priority), []).append(j)
        kinds = sorted({j.kind.value for j in jobs})
        return QueueStats(
            depths=[
                QueueDepth(
                    kind=kind,
                    priority=priority,
                    queued=len(group),
                    due=sum(1 for j in group if j.is_due(now)),
                    oldest_waiting_seconds=max(
                        (
                            (now - (j.next_attempt_at or j.created_at)).total_seconds()
                            for j in group
                            if j.is_due(now)
                        ),
                        default=0.0,
                    ),
                )
                for (kind, priority), group in sorted(depths.items())
            ],
            kinds=[
                KindStats(
                    kind=kind,
                    in_flight=sum(
                        1 for j in jobs if j.kind.value == kind and j.status in _IN_FLIGHT
                    ),
                    dead_letters=sum(
                        1 for j in jobs if j.kind.value == kind and j.dead_lettered_at is not None
                    ),
                    succeeded={
                        label: sum(
                            1
                            for j in jobs
                            if j.kind.value == kind
                            and j.status is JobStatus.SUCCEEDED
                            and j.updated_at >= now - span
                        )
                        for label, span in windows.items()
                    },
                    failed={
                        label: sum(
                            1
                            for j in jobs
                            if j.kind.value == kind
                            and j.status is JobStatus.FAILED
                            and j.updated_at >= now - span
                        )
                        for label, span in windows.items()
                    },
                )
                for kind in kinds
            ],
        )


class InMemoryJobEvents(_Repo):
    async def add(self, event: JobEvent) -> None:
        self._d.job_events[event.id] = event

    async def list_for_job(self, job_id: uuid.UUID) -> list[JobEvent]:
        return sorted(
            (e for e in self._d.job_events.values() if e.job_id == job_id),
            key=lambda e: e.created_at,
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_IN_FLIGHT = frozenset({JobStatus.DISPATCHED, JobStatus.RUNNING})


def _wake_up_stale(woken: datetime | None, job: Job, stale_before: datetime) -> bool:
    """Whether a due job needs another wake-up: never woken, woken before
    ``stale_before``, or woken before its retry time (that wake-up was for the attempt
    before)."""
    if woken is None or woken < stale_before:
        return True
    return job.next_attempt_at is not None and woken < job.next_attempt_at
