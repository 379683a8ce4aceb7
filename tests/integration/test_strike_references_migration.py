"""Migration 0420 (issue #19): strikes recorded twice for the same refusal before it
are folded into one (the oldest kept), and the unique index keeps it so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from genstudio.adapters.supabase.migrate import upgrade
from tests import servers

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, tzinfo=UTC)
INSERT = (
    "INSERT INTO moderation_strikes (id, user_id, reason, surface, reference, created_at)"
    " VALUES (%s, %s, 'hate', 'prompt', %s, %s)"
)


@pytest.fixture
def at_0410() -> Iterator[str]:
    name = f"genstudio_0420_{uuid.uuid4().hex[:10]}"
    admin = f"{servers.pg_server()}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    try:
        upgrade(url, "0410")
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_duplicate_strikes_are_folded_into_the_oldest_and_kept_unique(at_0410: str) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    oldest = uuid.uuid4()
    with psycopg.connect(at_0410, autocommit=True) as conn:
        conn.execute(INSERT, (uuid.uuid4(), user, "job:1", T0 + timedelta(hours=2)))
        conn.execute(INSERT, (oldest, user, "job:1", T0))
        conn.execute(INSERT, (uuid.uuid4(), user, "job:1", T0 + timedelta(hours=1)))
        conn.execute(INSERT, (uuid.uuid4(), other, "job:1", T0))
        conn.execute(INSERT, (uuid.uuid4(), user, None, T0))
        conn.execute(INSERT, (uuid.uuid4(), user, None, T0))

    upgrade(at_0410)

    with psycopg.connect(at_0410, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, user_id, reference FROM moderation_strikes ORDER BY user_id, reference"
        ).fetchall()
        mine = [r for r in rows if r[1] == user]
        assert [r[2] for r in mine] == ["job:1", None, None]
        assert mine[0][0] == oldest
        assert [r[2] for r in rows if r[1] == other] == ["job:1"]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(INSERT, (uuid.uuid4(), user, "job:1", T0))
        # the new surface is accepted
        conn.execute(
            "INSERT INTO moderation_strikes (id, user_id, reason, surface, created_at)"
            " VALUES (%s, %s, 'hate', 'display_name', %s)",
            (uuid.uuid4(), user, T0),
        )
