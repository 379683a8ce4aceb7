"""Idempotency records in Postgres, claimed under an advisory lock."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    bindparam,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

from adapters.supabase import tables as t
from adapters.supabase.compiled import Compiled
from adapters.supabase.repositories.rows import Row, _params, _Repository, _utc
from core.model.idempotency import IdempotencyRecord

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
