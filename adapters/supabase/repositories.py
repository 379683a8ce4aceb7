"""The repositories of ``ports.repositories`` over one SQLAlchemy connection.

Each repository works inside the transaction of the unit of work that made it;
none of them commits. A conflict the caller is meant to survive (a duplicate
idempotency key) is skipped with ``ON CONFLICT DO NOTHING`` and reported as a domain
error, so the transaction stays usable without a savepoint.

The frequent statements (a submission's, a job run's) are compiled once at import
and run through ``Driver`` on the same connection (``adapters.supabase.compiled``);
the rest are built per call with SQLAlchemy Core.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from sqlalchemy import (
    CTE,
    ColumnElement,
    RowMapping,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    true,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Subquery

from adapters.supabase import tables as t
from adapters.supabase.compiled import Compiled, Driver, SqlConnection
from core.credits import Allocation, EntryKind, Hold, HoldStatus, LedgerEntry, Lot
from core.errors import ConcurrencyConflict, DuplicateEntry, InsufficientCredits, NotFound
from core.idempotency import IdempotencyRecord
from core.job_events import JobEvent, JobEventKind
from core.jobs import Job, JobError, JobParams, JobStatus
from core.media import MediaAsset, MediaKind
from core.pricing import ModelKind
from core.profiles import Profile, SubscriptionTier
from core.queueing import KindStats, QueueDepth, QueuePolicy, QueueStats

Row = RowMapping | Mapping[str, Any]


def _utc(value: datetime) -> datetime:
    # psycopg returns timestamptz in the session's TimeZone, which Supabase leaves
    # at UTC but a self-hosted server may not
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _params(names: Any) -> dict[str, Any]:
    """``{name: bindparam(name)}`` for ``.values()`` of a compiled statement."""
    return {name: bindparam(name) for name in names}


class _Repository:
    """``_conn`` runs statements built per call; ``_sql`` the compiled ones (and
    defers writes), on the same connection and transaction."""

    def __init__(self, connection: SqlConnection) -> None:
        self._conn = connection
        self._sql: Driver = connection.driver


# --- profiles ---------------------------------------------------------------------------


def _profile(row: Row) -> Profile:
    return Profile(
        id=row["id"],
        email=row["email"],
        credits=row["credits"],
        subscription_tier=SubscriptionTier(row["subscription_tier"]),
        created_at=_utc(row["created_at"]),
        subscription_expires_at=_utc_or_none(row["subscription_expires_at"]),
        subscription_status=row["subscription_status"],
    )


_GET_PROFILE = Compiled(select(t.profiles).where(t.profiles.c.id == bindparam("user_id")))


class SqlProfiles(_Repository):
    async def get(self, user_id: uuid.UUID) -> Profile | None:
        row = await self._sql.one(_GET_PROFILE, {"user_id": user_id})
        return None if row is None else _profile(row)

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        profile = await self.get(user_id)
        if profile is not None:
            if profile.email is None and email is not None:
                await self._conn.execute(
                    update(t.profiles)
                    .where(t.profiles.c.id == user_id, t.profiles.c.email.is_(None))
                    .values(email=email)
                )
                profile = msgspec.structs.replace(profile, email=email)
            return profile
        new_profile = (
            insert(t.profiles)
            .values(id=user_id, email=email)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        try:
            # On Supabase the auth user exists (it signed in to get its token), so
            # this succeeds without touching auth.users, which the app's role may
            # not be allowed to write.
            async with self._conn.begin_nested():
                await self._conn.execute(new_profile)
        except IntegrityError as exc:
            if not isinstance(exc.orig, pg_errors.ForeignKeyViolation):
                raise
            # Plain Postgres (tests, the embedded default): auth.users is our
            # stand-in and the user is created here, as Supabase Auth would have.
            await self._conn.execute(
                insert(t.auth_users)
                .values(id=user_id, email=email)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await self._conn.execute(new_profile)
        profile = await self.get(user_id)
        assert profile is not None
        return profile

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        p = t.profiles.c
        result = await self._conn.execute(
            update(t.profiles)
            .where(p.id == user_id)
            .values(
                subscription_tier=tier.value,
                subscription_status=status,
                subscription_expires_at=expires_at,
            )
            .returning(p.id)
        )
        if result.scalar_one_or_none() is None:
            raise NotFound(f"no profile {user_id}")


# --- ledger -----------------------------------------------------------------------------


def _entry(row: Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        user_id=row["user_id"],
        kind=EntryKind(row["kind"]),
        amount=row["amount"],
        balance_after=row["balance_after"],
        reference=row["reference"],
        idempotency_key=row["idempotency_key"],
        created_at=_utc(row["created_at"]),
        lot_id=row["lot_id"],
        hold_id=row["hold_id"],
    )


def _lot(row: Row) -> Lot:
    return Lot(
        id=row["id"],
        user_id=row["user_id"],
        source=EntryKind(row["source"]),
        amount=row["amount"],
        remaining=row["remaining"],
        created_at=_utc(row["created_at"]),
        expires_at=_utc_or_none(row["expires_at"]),
        reference=row["reference"],
        owed=row["owed"],
    )


def _hold(row: Row) -> Hold:
    return Hold(
        id=row["id"],
        user_id=row["user_id"],
        amount=row["amount"],
        allocations=msgspec.convert(row["allocations"], tuple[Allocation, ...]),
        status=HoldStatus(row["status"]),
        reference=row["reference"],
        created_at=_utc(row["created_at"]),
        closed_at=_utc_or_none(row["closed_at"]),
    )


_P = t.profiles.c
_LOCK_PROFILE = Compiled(select(t.profiles).where(_P.id == bindparam("user_id")).with_for_update())
_BALANCE = Compiled(select(_P.credits).where(_P.id == bindparam("user_id")))
_UNDO_MOVE = Compiled(
    update(t.profiles)
    .where(_P.id == bindparam("user_id"))
    .values(credits=_P.credits - bindparam("amount"))
)


def _append_ctes() -> tuple[CTE, CTE]:
    """Move the balance and insert the entry, in one statement (one round trip).

    The balance moves conditionally, never read-modify-write (the CHECK on profiles
    is only the backstop): ``moved`` answers the balance left, or nothing. The entry
    is inserted only if that balance is the entry's ``balance_after``, and skipped on
    a duplicate key: ``added`` answers its id, or nothing.
    """
    moved = (
        update(t.profiles)
        .where(_P.id == bindparam("user_id"), _P.credits + bindparam("amount") >= 0)
        .values(credits=_P.credits + bindparam("amount"))
        .returning(_P.credits)
        .cte("moved")
    )
    columns = [col.name for col in t.credit_ledger.c]
    added = (
        insert(t.credit_ledger)
        .from_select(
            columns,
            select(*(bindparam(name, type_=t.credit_ledger.c[name].type) for name in columns))
            .select_from(moved)
            .where(moved.c.credits == bindparam("balance_after")),
        )
        .on_conflict_do_nothing(constraint=t.LEDGER_IDEMPOTENCY_KEY)
        .returning(t.credit_ledger.c.id)
        .cte("added")
    )
    return moved, added


def _words(*parts: str | ColumnElement[Any]) -> ColumnElement[Any]:
    """A message made in SQL: constant words and values, as text."""
    out: ColumnElement[Any] | None = None
    for part in parts:
        piece = literal_column(f"'{part}'", Text) if isinstance(part, str) else cast(part, Text)
        out = piece if out is None else out + piece
    assert out is not None
    return out


def _refuse(
    code: str, message: ColumnElement[Any], detail: ColumnElement[Any] | None = None
) -> Any:
    """``genstudio_refuse`` (migration 0007): the statement raises ``code``, which
    the driver maps to a domain error (``compiled._refused``)."""
    args = [literal_column(f"'{code}'", Text), message]
    return func.genstudio_refuse(*args, *([detail] if detail is not None else []))


def _append_statement() -> Compiled:
    """``append``: the balance left (NULL: not moved) and the new entry's id (NULL: not
    inserted), so the caller can tell the refusals apart and undo the move."""
    moved, added = _append_ctes()
    return Compiled(
        select(
            select(moved.c.credits).scalar_subquery().label("credits"),
            select(added.c.id).scalar_subquery().label("added"),
        )
    )


def _append_deferred_statement() -> Compiled:
    """``append_deferred``: the same move and insert, refusing by raising, so that
    nothing has to be read back: GS409 a stale ``balance_after``, a duplicate key as
    the unique violation it is, GS402 an overdraw, GS404 no profile."""
    moved, added = _append_ctes()
    left = select(moved.c.credits).scalar_subquery()
    balance = select(_P.credits).where(_P.id == bindparam("user_id")).scalar_subquery()
    user, key = bindparam("user_id"), bindparam("idempotency_key")
    return Compiled(
        select(
            case(
                (exists(select(added.c.id)), true()),
                (
                    left != bindparam("balance_after"),
                    _refuse(
                        "GS409",
                        _words(
                            "balance of ",
                            user,
                            " is ",
                            left,
                            " after the entry, not ",
                            bindparam("balance_after"),
                            ": the account was not locked",
                        ),
                    ),
                ),
                (
                    exists(select(moved.c.credits)),
                    _refuse("23505", _words("entry ", key, " exists")),
                ),
                (
                    balance.is_not(None),
                    _refuse(
                        "GS402",
                        _words("insufficient credits"),
                        _words(-bindparam("amount"), " ", balance),
                    ),
                ),
                else_=_refuse("GS404", _words("no profile ", user)),
            )
        )
    )


_APPEND = _append_statement()
_APPEND_DEFERRED = _append_deferred_statement()
_FIND_ENTRY = Compiled(
    select(t.credit_ledger).where(
        t.credit_ledger.c.user_id == bindparam("user_id"),
        t.credit_ledger.c.idempotency_key == bindparam("key"),
    )
)
_L = t.credit_lots.c
_LOTS = Compiled(select(t.credit_lots).where(_L.user_id == bindparam("user_id"), _L.remaining > 0))


def _set_remaining_statement() -> Compiled:
    """Deferred, so it refuses by raising (migration 0007): GS422 out of range, GS404
    no lot."""
    lot, to = bindparam("lot_id"), bindparam("to", type_=_L.remaining.type)
    updated = (
        update(t.credit_lots)
        .where(_L.id == lot, to.between(0, _L.amount))
        .values(remaining=to)
        .returning(_L.id)
        .cte("updated")
    )
    amount = select(_L.amount).where(_L.id == lot).scalar_subquery()
    return Compiled(
        select(
            case(
                (exists(select(updated.c.id)), true()),
                (
                    amount.is_not(None),
                    _refuse("GS422", _words("lot ", lot, " cannot hold ", to, " of ", amount)),
                ),
                else_=_refuse("GS404", _words("no lot ", lot)),
            )
        )
    )


_SET_REMAINING = _set_remaining_statement()
_LOTS_BY_ID = Compiled(select(t.credit_lots).where(_L.id == func.any(bindparam("lot_ids"))))
_SET_OWED = Compiled(
    update(t.credit_lots)
    .where(_L.id == bindparam("lot_id"))
    .values(owed=bindparam("to"))
    .returning(_L.id)
)
_ADD_LOT = Compiled(insert(t.credit_lots).values(_params(col.name for col in t.credit_lots.c)))
_H = t.credit_holds.c
_ADD_HOLD = Compiled(insert(t.credit_holds).values(_params(col.name for col in t.credit_holds.c)))
_GET_HOLD = Compiled(select(t.credit_holds).where(_H.id == bindparam("hold_id")))
_CLOSE_HOLD = Compiled(
    update(t.credit_holds)
    .where(_H.id == bindparam("hold_id"), _H.status == HoldStatus.OPEN.value)
    .values(status=bindparam("to_status"), closed_at=bindparam("to_closed_at"))
    .returning(_H.id)
)


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _entry_values(entry: LedgerEntry) -> dict[str, Any]:
    return {
        "user_id": entry.user_id,
        "amount": entry.amount,
        "id": entry.id,
        "kind": entry.kind.value,
        "balance_after": entry.balance_after,
        "reference": entry.reference,
        "idempotency_key": entry.idempotency_key,
        "lot_id": entry.lot_id,
        "hold_id": entry.hold_id,
        "created_at": entry.created_at,
    }


class SqlLedger(_Repository):
    async def lock_account(self, user_id: uuid.UUID) -> int:
        row = await self._sql.one(_LOCK_PROFILE, {"user_id": user_id})
        if row is None:
            raise NotFound(f"no profile {user_id}")
        credits: int = row["credits"]
        return credits

    async def will_lock_account(self, user_id: uuid.UUID) -> None:
        # the lock and the lots travel after the next statement (the key's claim)
        self._sql.ahead(
            ("account", user_id),
            (_LOCK_PROFILE, {"user_id": user_id}),
            (_LOTS, {"user_id": user_id}),
        )

    async def lock_account_with_lots(self, user_id: uuid.UUID) -> tuple[Profile, list[Lot]]:
        # one round trip (or none, if announced); the lots are read after the lock is
        # held, with a fresh snapshot
        answered = self._sql.answered(("account", user_id))
        if answered is not None:
            locked, lots = answered
        else:
            locked, lots = await self._sql.both(
                _LOCK_PROFILE, {"user_id": user_id}, _LOTS, {"user_id": user_id}
            )
        if not locked:
            raise NotFound(f"no profile {user_id}")
        return _profile(locked[0]), [_lot(row) for row in lots]

    async def balance(self, user_id: uuid.UUID) -> int:
        row = await self._sql.one(_BALANCE, {"user_id": user_id})
        return 0 if row is None else int(row["credits"])

    async def append(self, entry: LedgerEntry) -> None:
        """One statement on the normal path (the submission's hot path), no savepoint:
        a refused entry undoes its balance move, so the transaction stays usable.

        The balance the move leaves must be the entry's ``balance_after``: anything
        else means the caller did not hold the account's lock, and is refused.
        """
        moved = {"user_id": entry.user_id, "amount": entry.amount}
        row = await self._sql.one(_APPEND, _entry_values(entry))
        assert row is not None  # a SELECT of two scalar subqueries answers one row
        if row["credits"] is None:
            found = await self._sql.one(_BALANCE, {"user_id": entry.user_id})
            if found is None:
                raise NotFound(f"no profile {entry.user_id}")
            raise InsufficientCredits(required=-entry.amount, available=found["credits"])
        if row["added"] is not None:
            return
        await self._sql.run(_UNDO_MOVE, moved)
        if row["credits"] != entry.balance_after:
            raise ConcurrencyConflict(
                f"balance of {entry.user_id} is {row['credits']} after the entry,"
                f" not {entry.balance_after}: the account was not locked"
            )
        raise DuplicateEntry(f"entry {entry.idempotency_key!r} exists")

    async def append_deferred(self, entry: LedgerEntry) -> None:
        """Travels with the next statement or the commit; refused by the database."""
        self._sql.defer(_APPEND_DEFERRED, _entry_values(entry))

    async def find(self, user_id: uuid.UUID, idempotency_key: str) -> LedgerEntry | None:
        row = await self._sql.one(_FIND_ENTRY, {"user_id": user_id, "key": idempotency_key})
        return None if row is None else _entry(row)

    async def entries(
        self, user_id: uuid.UUID, *, limit: int, before: tuple[datetime, uuid.UUID] | None = None
    ) -> list[LedgerEntry]:
        c = t.credit_ledger.c
        query = select(t.credit_ledger).where(c.user_id == user_id)
        if before is not None:
            # a row comparison, so the (user_id, created_at DESC, id DESC) index serves it
            query = query.where(tuple_(c.created_at, c.id) < tuple_(*before))
        query = query.order_by(c.created_at.desc(), c.id.desc()).limit(limit)
        result = await self._conn.execute(query)
        return [_entry(row) for row in result.mappings()]

    async def lots(self, user_id: uuid.UUID) -> list[Lot]:
        return [_lot(row) for row in await self._sql.all(_LOTS, {"user_id": user_id})]

    async def lots_by_id(self, lot_ids: Collection[uuid.UUID]) -> list[Lot]:
        if not lot_ids:
            return []
        rows = await self._sql.all(_LOTS_BY_ID, {"lot_ids": list(set(lot_ids))})
        return [_lot(row) for row in rows]

    async def add_lot(self, lot: Lot) -> None:
        self._sql.defer(
            _ADD_LOT,
            {
                "id": lot.id,
                "user_id": lot.user_id,
                "source": lot.source.value,
                "amount": lot.amount,
                "remaining": lot.remaining,
                "reference": lot.reference,
                "created_at": lot.created_at,
                "expires_at": lot.expires_at,
                "owed": lot.owed,
            },
        )

    async def set_lot_remaining(self, lot_id: uuid.UUID, remaining: int) -> None:
        # deferred (a hold's lot update travels with its ledger entry): a lot that
        # refuses it fails the unit of work there
        self._sql.defer(_SET_REMAINING, {"lot_id": lot_id, "to": remaining})

    async def set_lot_owed(self, lot_id: uuid.UUID, owed: int) -> None:
        if owed < 0:
            raise ValueError(f"lot {lot_id} cannot owe {owed}")
        if await self._sql.one(_SET_OWED, {"lot_id": lot_id, "to": owed}) is None:
            raise NotFound(f"no lot {lot_id}")

    async def end_lot(self, lot_id: uuid.UUID, at: datetime) -> None:
        c = t.credit_lots.c
        await self._conn.execute(
            update(t.credit_lots)
            .where(c.id == lot_id, or_(c.expires_at.is_(None), c.expires_at > at))
            .values(expires_at=at)
        )

    async def reopen_lot(self, lot_id: uuid.UUID) -> None:
        await self._conn.execute(
            update(t.credit_lots).where(t.credit_lots.c.id == lot_id).values(expires_at=None)
        )

    async def add_hold(self, hold: Hold) -> None:
        self._sql.defer(
            _ADD_HOLD,
            {
                "id": hold.id,
                "user_id": hold.user_id,
                "amount": hold.amount,
                "allocations": _json(msgspec.to_builtins(hold.allocations)),
                "status": hold.status.value,
                "reference": hold.reference,
                "created_at": hold.created_at,
                "closed_at": hold.closed_at,
            },
        )

    async def get_hold(self, hold_id: uuid.UUID) -> Hold | None:
        row = await self._sql.one(_GET_HOLD, {"hold_id": hold_id})
        return None if row is None else _hold(row)

    async def close_hold(self, hold: Hold) -> None:
        closed = {
            "hold_id": hold.id,
            "to_status": hold.status.value,
            "to_closed_at": hold.closed_at,
        }
        if await self._sql.one(_CLOSE_HOLD, closed) is None:
            raise ConcurrencyConflict(f"hold {hold.id} is not open")


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


# --- media ------------------------------------------------------------------------------


def _media_relation() -> Subquery:
    """Images and videos as one relation shaped like MediaAsset."""
    shared = [
        *("id", "user_id", "storage_key", "content_type", "width", "height"),
        *("byte_size", "prompt", "model_id", "job_id", "is_public", "created_at", "caption"),
    ]
    images = select(
        *(t.images.c[name] for name in shared),
        literal(MediaKind.IMAGE.value).label("kind"),
        null().label("duration_seconds"),
        null().label("thumbnail_key"),
    )
    videos = select(
        *(t.videos.c[name] for name in shared),
        literal(MediaKind.VIDEO.value).label("kind"),
        t.videos.c.duration_seconds,
        t.videos.c.thumbnail_key,
    )
    return union_all(images, videos).subquery("media")


_MEDIA = _media_relation()


def _asset(row: Row) -> MediaAsset:
    return MediaAsset(
        id=row["id"],
        user_id=row["user_id"],
        kind=MediaKind(row["kind"]),
        storage_key=row["storage_key"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        byte_size=row["byte_size"],
        prompt=row["prompt"],
        model_id=row["model_id"],
        job_id=row["job_id"],
        created_at=_utc(row["created_at"]),
        is_public=row["is_public"],
        duration_seconds=row["duration_seconds"],
        thumbnail_key=row["thumbnail_key"],
        caption=row["caption"],
    )


_ADD_IMAGE = Compiled(insert(t.images).values(_params(c.name for c in t.images.c)))
_ADD_VIDEO = Compiled(insert(t.videos).values(_params(c.name for c in t.videos.c)))


class SqlMedia(_Repository):
    async def add(self, asset: MediaAsset) -> None:
        values: dict[str, Any] = {
            "id": asset.id,
            "user_id": asset.user_id,
            "storage_key": asset.storage_key,
            "content_type": asset.content_type,
            "width": asset.width,
            "height": asset.height,
            "byte_size": asset.byte_size,
            "prompt": asset.prompt,
            "model_id": asset.model_id,
            "job_id": asset.job_id,
            "is_public": asset.is_public,
            "created_at": asset.created_at,
            "caption": asset.caption,
        }
        if asset.kind is MediaKind.VIDEO:
            values["duration_seconds"] = asset.duration_seconds
            values["thumbnail_key"] = asset.thumbnail_key
            self._sql.defer(_ADD_VIDEO, values)
        else:
            self._sql.defer(_ADD_IMAGE, values)

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None:
        result = await self._conn.execute(select(_MEDIA).where(_MEDIA.c.id == asset_id))
        row = result.mappings().one_or_none()
        return None if row is None else _asset(row)

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]:
        result = await self._conn.execute(
            select(_MEDIA)
            .where(_MEDIA.c.job_id == job_id)
            .order_by(_MEDIA.c.created_at, _MEDIA.c.id)
        )
        return [_asset(row) for row in result.mappings()]


# --- idempotency ------------------------------------------------------------------------

# Transaction-scoped, so the key is released by commit or rollback and can never
# leak past the unit of work; re-entrant, so the holder asking again gets True.
_TRY_LOCK = Compiled(
    text(
        "SELECT pg_try_advisory_xact_lock("
        "hashtextextended(CAST(:user_id AS text) || ':' || :key, 0)) AS locked"
    )
)
_I = t.idempotency_records.c
_GET_RECORD = Compiled(
    select(t.idempotency_records).where(
        _I.user_id == bindparam("user_id"), _I.key == bindparam("key")
    )
)
# no ON CONFLICT: a stored key is a unique violation, which the driver raises as
# DuplicateEntry (the insert is deferred: its refusal must abort the transaction)
_ADD_RECORD = Compiled(
    insert(t.idempotency_records).values(_params(c.name for c in t.idempotency_records.c))
)


def _record(row: Row) -> IdempotencyRecord:
    return IdempotencyRecord(
        user_id=row["user_id"],
        key=row["key"],
        request_hash=row["request_hash"],
        status_code=row["status_code"],
        response_body=bytes(row["response_body"]),
        created_at=_utc(row["created_at"]),
    )


class SqlIdempotency(_Repository):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        row = await self._sql.one(_TRY_LOCK, {"user_id": str(user_id), "key": key})
        return row is not None and bool(row["locked"])

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        row = await self._sql.one(_GET_RECORD, {"user_id": user_id, "key": key})
        return None if row is None else _record(row)

    async def claim(self, user_id: uuid.UUID, key: str) -> tuple[bool, IdempotencyRecord | None]:
        # one round trip; the record is read after the lock is tried, with a fresh
        # snapshot: a request that held the key and committed is seen
        locked, records = await self._sql.both(
            _TRY_LOCK,
            {"user_id": str(user_id), "key": key},
            _GET_RECORD,
            {"user_id": user_id, "key": key},
        )
        if not locked[0]["locked"]:
            return False, None
        return True, _record(records[0]) if records else None

    async def add(self, record: IdempotencyRecord) -> None:
        # deferred: it travels with the commit (the key is held: a duplicate is a bug)
        self._sql.defer(
            _ADD_RECORD,
            {
                "user_id": record.user_id,
                "key": record.key,
                "request_hash": record.request_hash,
                "status_code": record.status_code,
                "response_body": record.response_body,
                "created_at": record.created_at,
            },
        )


# --- upload intents ---------------------------------------------------------------------

_U = t.upload_intents.c
_EXPECT_UPLOAD = Compiled(
    insert(t.upload_intents)
    .values(_params(["storage_key", "user_id", "created_at"]))
    .on_conflict_do_nothing(index_elements=["storage_key"])
)


class SqlUploads(_Repository):
    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        self._sql.defer(
            _EXPECT_UPLOAD, {"storage_key": storage_key, "user_id": user_id, "created_at": at}
        )

    async def settle(self, storage_keys: Sequence[str]) -> None:
        if storage_keys:
            await self._conn.execute(
                delete(t.upload_intents).where(_U.storage_key.in_(list(storage_keys)))
            )

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        result = await self._conn.execute(
            select(_U.storage_key)
            .where(_U.created_at < before)
            .order_by(_U.created_at, _U.storage_key)
            .limit(limit)
        )
        return [key for (key,) in result]
