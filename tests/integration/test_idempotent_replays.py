"""Replays through the HTTP API on the real Postgres: a retry gets the first answer,
rendered again from the job as it was submitted; a record stored before migration
0012 (a status code and the response bytes) replays those bytes as they are."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.supabase.auth import mint_token
from genstudio.core.model.idempotency import request_fingerprint
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.test_failover import grant

SECRET = "replay-secret-" + "r" * 32
PATH = "/v1/generate/image"
BODY = msgspec.json.encode({"model": "flux-schnell", "prompt": "a fox", "width": 256})


@pytest.fixture
async def client(fresh_db: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def post(
    client: AsyncTestClient[Litestar], user: uuid.UUID, key: str, body: bytes = BODY
) -> httpx.Response:
    return await client.post(
        PATH,
        content=body,
        headers={
            "Authorization": f"Bearer {mint_token(SECRET, user_id=user)}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )


def count(database_url: str, sql: str, user: uuid.UUID) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql, (user,)).fetchone()
    assert row is not None
    return int(row[0])


async def test_a_retry_gets_the_first_answer_byte_for_byte(
    client: AsyncTestClient[Litestar], fresh_db: str
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)

    first = await post(client, user, "tap-1")
    again = await post(client, user, "tap-1")

    assert first.status_code == again.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert again.headers["location"] == first.headers["location"]
    assert first.headers["location"] == f"/v1/generate/{first.json()['id']}"
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "SELECT job_id, job_snapshot IS NOT NULL, status_code, response_body"
            " FROM idempotency_records WHERE user_id = %s",
            (user,),
        ).fetchone()
    assert row == (uuid.UUID(first.json()["id"]), True, None, None)
    assert count(fresh_db, "SELECT count(*) FROM jobs WHERE user_id = %s", user) == 1


async def test_a_record_stored_before_snapshots_replays_its_bytes(
    client: AsyncTestClient[Litestar], fresh_db: str
) -> None:
    """A row as releases before migration 0012 wrote it: status code and body only."""
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    job_id = uuid.uuid4()
    stored = (
        b'{"id":"%s","kind":"image","model":"flux-schnell","status":"queued","progress":0,'
        b'"cost":1,"attempts":0,"provider":null,"error":null,"params":{"prompt":"a fox"},'
        b'"assets":[],"createdAt":"2026-11-30T10:00:00Z","updatedAt":"2026-11-30T10:00:00Z",'
        b'"nextAttemptAt":null,"deadLettered":false,"rerunOf":null}' % str(job_id).encode()
    )
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO idempotency_records"
            " (user_id, key, request_hash, status_code, response_body, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (
                user,
                "old-tap",
                request_fingerprint("POST", PATH, BODY),
                202,
                stored,
                datetime.now(UTC),
            ),
        )

    replay = await post(client, user, "old-tap")
    other = await post(client, user, "old-tap", BODY.replace(b"a fox", b"a cat"))

    assert replay.status_code == 202
    assert replay.content == stored
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["location"] == f"/v1/generate/{job_id}"
    assert other.status_code == 422 and other.json()["code"] == "idempotency_mismatch"
    assert count(fresh_db, "SELECT count(*) FROM jobs WHERE user_id = %s", user) == 0
    assert count(fresh_db, "SELECT credits FROM profiles WHERE id = %s", user) == 5
