"""Idempotency records in Postgres, claimed under an advisory lock."""

from __future__ import annotations

import uuid

import msgspec
from sqlalchemy import (
    bindparam,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import Row, _params, _Repository, _utc
from genstudio.core.model.idempotency import IdempotencyRecord, StoredResponse
from genstudio.core.model.jobs import Job

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


# the job as msgspec's JSON: fields the Job gains later take their defaults when an
# older snapshot is read, fields it loses are ignored
_encode_job = msgspec.json.Encoder().encode
_decode_job = msgspec.json.Decoder(Job).decode


def _record(row: Row) -> IdempotencyRecord:
    snapshot = row["job_snapshot"]
    return IdempotencyRecord(
        user_id=row["user_id"],
        key=row["key"],
        request_hash=row["request_hash"],
        created_at=_utc(row["created_at"]),
        job=None if snapshot is None else _decode_job(snapshot),
        # written before migration 0012: the answer as it was sent
        response=(
            None
            if snapshot is not None
            else StoredResponse(row["status_code"], bytes(row["response_body"]))
        ),
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
                "created_at": record.created_at,
                "job_id": None if record.job is None else record.job.id,
                "job_snapshot": None if record.job is None else _encode_job(record.job),
                "status_code": None if record.response is None else record.response.status_code,
                "response_body": None if record.response is None else record.response.body,
            },
        )
