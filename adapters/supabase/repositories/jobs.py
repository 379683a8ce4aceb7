"""Jobs and job events in Postgres: claims with SKIP LOCKED, versioned updates."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import (
    and_,
    bindparam,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import (
    Row,
    _json,
    _params,
    _Repository,
    _utc,
    _utc_or_none,
)
from genstudio.core.model.errors import ConcurrencyConflict
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.job_params import JobParams
from genstudio.core.model.jobs import Job, JobError, JobStatus
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.queueing import KindStats, QueueDepth, QueuePolicy, QueueStats

# --- jobs -------------------------------------------------------------------------------


def _job_values(job: Job) -> dict[str, Any]:
    """The job's columns but ``id`` and ``version``, as the compiled statements take them."""
    return {
        "user_id": job.user_id,
        "kind": job.kind.value,
        "model_id": job.model_id,
        "params": _json(msgspec.to_builtins(job.params)),
        "cost": job.cost,
        "hold_id": job.hold_id,
        "status": job.status.value,
        "attempts": job.attempts,
        "provider": job.provider,
        "provider_job_id": job.provider_job_id,
        "progress": job.progress,
        "error": None if job.error is None else _json(msgspec.to_builtins(job.error)),
        "asset_ids": list(job.asset_ids),
        "priority": job.priority,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "next_attempt_at": job.next_attempt_at,
        "lease_owner": job.lease_owner,
        "lease_expires_at": job.lease_expires_at,
        "dead_lettered_at": job.dead_lettered_at,
        "rerun_of": job.rerun_of,
        "submitted_at": job.submitted_at,
    }


def _job(row: Row) -> Job:
    error = row["error"]
    return Job(
        id=row["id"],
        user_id=row["user_id"],
        kind=ModelKind(row["kind"]),
        model_id=row["model_id"],
        params=msgspec.convert(row["params"], JobParams),
        cost=row["cost"],
        hold_id=row["hold_id"],
        status=JobStatus(row["status"]),
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
        attempts=row["attempts"],
        provider=row["provider"],
        provider_job_id=row["provider_job_id"],
        progress=row["progress"],
        error=None if error is None else msgspec.convert(error, JobError),
        asset_ids=tuple(row["asset_ids"]),
        priority=row["priority"],
        version=row["version"],
        next_attempt_at=_utc_or_none(row["next_attempt_at"]),
        lease_owner=row["lease_owner"],
        lease_expires_at=_utc_or_none(row["lease_expires_at"]),
        dead_lettered_at=_utc_or_none(row["dead_lettered_at"]),
        rerun_of=row["rerun_of"],
        submitted_at=_utc_or_none(row["submitted_at"]),
    )


_J = t.jobs.c
#: what ``_job_values`` sets: every column but the key, the version and the
#: reconciler's own ``enqueued_at``
_JOB_FIELDS = [c.name for c in t.jobs.c if c.name not in ("id", "version", "enqueued_at")]
_ADD_JOB = Compiled(insert(t.jobs).values(_params(["id", "version", *_JOB_FIELDS])))
_GET_JOB = Compiled(select(t.jobs).where(_J.id == bindparam("id")))
_LOCK_JOB = Compiled(select(t.jobs).where(_J.id == bindparam("id")).with_for_update())
_UPDATE_JOB = Compiled(
    update(t.jobs)
    .where(_J.id == bindparam("id"), _J.version == bindparam("version"))
    .values(version=_J.version + 1, **_params(_JOB_FIELDS))
    .returning(_J.version)
)


class SqlJobs(_Repository):
    async def add(self, job: Job) -> None:
        self._sql.defer(_ADD_JOB, {"id": job.id, "version": job.version, **_job_values(job)})

    async def get(self, job_id: uuid.UUID, *, lock: bool = False) -> Job | None:
        row = await self._sql.one(_LOCK_JOB if lock else _GET_JOB, {"id": job_id})
        return None if row is None else _job(row)

    async def update(self, job: Job) -> Job:
        row = await self._sql.one(
            _UPDATE_JOB, {"id": job.id, "version": job.version, **_job_values(job)}
        )
        if row is None:
            raise ConcurrencyConflict(f"job {job.id} changed underneath")
        return msgspec.structs.replace(job, version=row["version"])

    async def list_by_status(self, statuses: frozenset[JobStatus], *, limit: int) -> list[Job]:
        c = t.jobs.c
        result = await self._conn.execute(
            select(t.jobs)
            .where(c.status.in_([s.value for s in statuses]))
            .order_by(c.created_at, c.id)
            .limit(limit)
        )
        return [_job(row) for row in result.mappings()]

    def _claimable(self, kind: str, now: datetime) -> Any:
        c = t.jobs.c
        due = and_(
            c.status == JobStatus.QUEUED.value,
            or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
        )
        abandoned = and_(
            c.status.in_(_IN_FLIGHT),
            or_(c.lease_expires_at.is_(None), c.lease_expires_at <= now),
        )
        return and_(c.kind == kind, or_(due, abandoned))

    async def claim_next(self, kind: str, *, now: datetime, policy: QueuePolicy) -> Job | None:
        c = t.jobs.c
        # the same formula as PriorityPolicy.score, so the database orders as the core would
        waited = func.greatest(func.extract("epoch", literal(now) - c.created_at), 0)
        score = c.priority + func.least(
            waited / policy.priority.aging_seconds, policy.priority.max_boost
        )
        skipped: list[uuid.UUID] = []
        for _ in range(_CLAIM_TRIES):
            query = (
                select(t.jobs)
                .where(self._claimable(kind, now))
                .order_by(score.desc(), c.created_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if skipped:
                query = query.where(c.id.not_in(skipped))
            row = (await self._conn.execute(query)).mappings().one_or_none()
            if row is None:
                return None
            job = _job(row)
            if job.status is not JobStatus.QUEUED:
                return job  # an abandoned job: its owner already counts it in flight
            # serialise claims per user, then count exactly: two workers never both
            # take a user's last in-flight slot
            await self._conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended('in-flight:' || :u, 0))"),
                {"u": str(job.user_id)},
            )
            in_flight = (
                await self._conn.execute(
                    select(func.count())
                    .select_from(t.jobs)
                    .where(c.user_id == job.user_id, c.status.in_(_IN_FLIGHT))
                )
            ).scalar_one()
            if in_flight < policy.per_user_in_flight:
                return job
            skipped.append(job.id)
        return None

    async def needing_wakeup(
        self, *, now: datetime, stale_before: datetime, limit: int
    ) -> list[Job]:
        c = t.jobs.c
        due = and_(
            c.status == JobStatus.QUEUED.value,
            or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
            # not woken lately, or woken before its retry time: that wake-up was
            # for the attempt before
            or_(
                c.enqueued_at.is_(None),
                c.enqueued_at < stale_before,
                c.enqueued_at < c.next_attempt_at,
            ),
        )
        abandoned = and_(
            c.status.in_(_IN_FLIGHT),
            or_(c.lease_expires_at.is_(None), c.lease_expires_at <= now),
        )
        result = await self._conn.execute(
            select(t.jobs).where(or_(due, abandoned)).order_by(c.created_at).limit(limit)
        )
        return [_job(row) for row in result.mappings()]

    async def mark_enqueued(self, job_ids: list[uuid.UUID], at: datetime | None) -> None:
        if job_ids:
            # not a domain change: no version bump, so it never conflicts with a worker
            await self._conn.execute(
                update(t.jobs).where(t.jobs.c.id.in_(job_ids)).values(enqueued_at=at)
            )

    async def dead_letters(self, *, limit: int) -> list[Job]:
        c = t.jobs.c
        result = await self._conn.execute(
            select(t.jobs)
            .where(c.dead_lettered_at.is_not(None))
            .order_by(c.dead_lettered_at.desc())
            .limit(limit)
        )
        return [_job(row) for row in result.mappings()]

    async def stats(self, *, now: datetime, windows: dict[str, timedelta]) -> QueueStats:
        c = t.jobs.c
        queued = c.status == JobStatus.QUEUED.value
        due = and_(queued, or_(c.next_attempt_at.is_(None), c.next_attempt_at <= literal(now)))
        due_since = func.coalesce(c.next_attempt_at, c.created_at)  # when it became due
        depth_rows = await self._conn.execute(
            select(
                c.kind,
                c.priority,
                func.count(),
                func.count().filter(due),
                func.min(due_since).filter(due),
            )
            .where(queued)
            .group_by(c.kind, c.priority)
            .order_by(c.kind, c.priority)
        )
        depths = [
            QueueDepth(
                kind=kind,
                priority=priority,
                queued=n,
                due=n_due,
                oldest_waiting_seconds=(
                    0.0 if oldest is None else max(0.0, (now - _utc(oldest)).total_seconds())
                ),
            )
            for kind, priority, n, n_due, oldest in depth_rows
        ]
        columns = [
            c.kind,
            func.count().filter(c.status.in_(_IN_FLIGHT)),
            func.count().filter(c.dead_lettered_at.is_not(None)),
        ]
        for span in windows.values():
            recent = c.updated_at >= literal(now - span)
            columns.append(func.count().filter(and_(c.status == "succeeded", recent)))
            columns.append(func.count().filter(and_(c.status == "failed", recent)))
        kinds = []
        for row in await self._conn.execute(select(*columns).group_by(c.kind).order_by(c.kind)):
            kind, in_flight, dead, *counts = row
            labels = list(windows)
            kinds.append(
                KindStats(
                    kind=kind,
                    in_flight=in_flight,
                    dead_letters=dead,
                    succeeded={label: counts[2 * i] for i, label in enumerate(labels)},
                    failed={label: counts[2 * i + 1] for i, label in enumerate(labels)},
                )
            )
        return QueueStats(depths=depths, kinds=kinds)


_ADD_EVENT = Compiled(insert(t.job_events).values(_params(c.name for c in t.job_events.c)))


class SqlJobEvents(_Repository):
    async def add(self, event: JobEvent) -> None:
        self._sql.defer(
            _ADD_EVENT,
            {
                "id": event.id,
                "job_id": event.job_id,
                "user_id": event.user_id,
                "kind": event.kind.value,
                "message": event.message,
                "created_at": event.created_at,
            },
        )

    async def list_for_job(self, job_id: uuid.UUID) -> list[JobEvent]:
        c = t.job_events.c
        result = await self._conn.execute(
            select(t.job_events).where(c.job_id == job_id).order_by(c.created_at, c.id)
        )
        return [
            JobEvent(
                id=row["id"],
                job_id=row["job_id"],
                user_id=row["user_id"],
                kind=JobEventKind(row["kind"]),
                message=row["message"],
                created_at=_utc(row["created_at"]),
            )
            for row in result.mappings()
        ]


_IN_FLIGHT = [JobStatus.DISPATCHED.value, JobStatus.RUNNING.value]
_CLAIM_TRIES = 20
