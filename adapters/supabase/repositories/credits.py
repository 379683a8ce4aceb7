"""The credit ledger in Postgres: entries, lots, holds, one statement per move."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.profiles import _profile
from genstudio.adapters.supabase.repositories.rows import (
    Row,
    _json,
    _params,
    _Repository,
    _utc,
    _utc_or_none,
)
from genstudio.core.model.credits import Allocation, EntryKind, Hold, HoldStatus, LedgerEntry, Lot
from genstudio.core.model.errors import (
    ConcurrencyConflict,
    DuplicateEntry,
    InsufficientCredits,
    NotFound,
)
from genstudio.core.model.profiles import Profile

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
    user: BindParameter[uuid.UUID] = bindparam("user_id")
    key: BindParameter[str] = bindparam("idempotency_key")
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
    lot: BindParameter[uuid.UUID] = bindparam("lot_id")
    to = bindparam("to", type_=_L.remaining.type)
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
