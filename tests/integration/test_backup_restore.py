"""``genstudio backup`` / ``genstudio restore`` (issue #20): a database with ledger
entries is dumped into the configured storage (local files; Supabase Storage's
stand-in) and restored into a fresh database, where every ledger entry is found again,
byte for byte, and the ledger's invariants hold. A restore refuses a database that is
not empty and an archive that does not match its manifest, changing nothing."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.services.credits import grant_credits, place_hold, release_hold, settle_hold
from genstudio.entrypoints.backup import run_backup, run_restore
from genstudio.entrypoints.settings import Settings
from tests import servers
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.standins.supabase_storage import SupabaseStorageStandIn

pytestmark = pytest.mark.postgres

LEDGER = "SELECT * FROM credit_ledger ORDER BY id"


def _database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = f"{servers.pg_server()}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{servers.pg_server()}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db() -> Iterator[str]:
    """A database with nothing in it, not even migrations: where a restore goes."""
    yield from _database("genstudio_restore")


@pytest.fixture(scope="module")
def source_db() -> Iterator[str]:
    """A migrated database with the books of :func:`_fill` (the tests only read it)."""
    from genstudio.adapters.supabase.migrate import upgrade

    for url in _database("genstudio_backup"):
        upgrade(url)
        asyncio.run(_fill(url))
        yield url


async def _fill(url: str) -> None:
    """Three users; grants, a hold settled and a hold released: every kind of entry."""
    engine = make_engine(url, pool_size=2)
    uow_factory = SqlUnitOfWorkFactory(engine)
    now = datetime.now(UTC)
    try:
        for n in range(3):
            user = uuid.uuid4()
            for g in range(4):
                await grant_credits(
                    uow_factory,
                    user_id=user,
                    amount=10 + g,
                    reference=f"grant {g}",
                    idempotency_key=f"grant:{user}:{g}",
                    now=now,
                    email=f"user{n}@example.com",
                )
            async with uow_factory() as uow:
                kept = await place_hold(uow, user_id=user, amount=7, reference="job a", now=now)
                given_back = await place_hold(uow, user_id=user, amount=5, reference="b", now=now)
                await uow.commit()
            async with uow_factory() as uow:
                await settle_hold(uow, kept.id, now)
                await release_hold(uow, given_back.id, now)
                await uow.commit()
    finally:
        await engine.dispose()


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _same_books(source: str, restored: str) -> None:
    entries = _rows(source, LEDGER)
    assert len(entries) == 3 * (4 + 2 + 2)
    assert _rows(restored, LEDGER) == entries  # every entry, every column
    for query in (
        "SELECT id, credits FROM profiles ORDER BY id",
        "SELECT * FROM credit_lots ORDER BY id",
        "SELECT * FROM credit_holds ORDER BY id",
        "SELECT version_num FROM alembic_version",
        "SELECT tablename, policyname FROM pg_policies ORDER BY 1, 2",
        "SELECT id FROM auth.users ORDER BY id",
    ):
        assert _rows(restored, query) == _rows(source, query), query
    assert_ledger_invariants(restored)


def _command(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "genstudio.entrypoints.cli", *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_backup_in_local_files_restores_every_ledger_entry_into_a_fresh_database(
    source_db: str, empty_db: str, tmp_path: Path
) -> None:
    env = {
        "DATABASE_URL": source_db,
        "SUPABASE_JWT_SECRET": "backup-test-secret",
        "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
        "GENSTUDIO_LOG_LEVEL": "WARNING",
    }
    code, output = _command(["backup"], env)
    assert code == 0, output
    assert "(24 ledger entries)" in output
    key = output.split("backup ", 1)[1].split(":", 1)[0]
    assert key.startswith("backups/") and key.endswith(".dump")
    stored = tmp_path / "data" / "media" / key
    assert stored.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert (tmp_path / "data" / "media" / "backups" / "latest.json").is_file()

    code, output = _command(["restore", "--database-url", empty_db], env)
    assert code == 0, output
    assert f"restored {key}" in output and "every table as counted in the backup" in output
    _same_books(source_db, empty_db)


def test_a_backup_in_supabase_storage_restores_every_ledger_entry(
    source_db: str, empty_db: str, tmp_path: Path
) -> None:
    with SupabaseStorageStandIn() as storage:
        settings = Settings.from_env(
            {
                "DATABASE_URL": source_db,
                "SUPABASE_URL": storage.url,
                "SUPABASE_SERVICE_KEY": storage.service_key,
                "SUPABASE_STORAGE_BUCKET": "backups-test",
                "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
            }
        )
        out = io.StringIO()
        assert run_backup(settings, out) == 0, out.getvalue()
        objects = storage.buckets["backups-test"].objects
        [archive] = [k for k in objects if k.endswith(".dump")]
        assert set(objects) == {archive, archive.replace(".dump", ".json"), "backups/latest.json"}
        assert not storage.buckets["backups-test"].public
        assert not (tmp_path / "data" / "media").exists()  # nothing went to local files

        out = io.StringIO()
        code = run_restore(settings, archive, file=None, database_url=empty_db, out=out)
        assert code == 0, out.getvalue()
    _same_books(source_db, empty_db)


def test_a_restore_refuses_a_database_in_use_and_an_archive_that_does_not_match(
    source_db: str, empty_db: str, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": source_db, "GENSTUDIO_DATA_DIR": str(tmp_path / "data")}
    )
    assert run_backup(settings, io.StringIO()) == 0
    before = _rows(source_db, LEDGER)

    out = io.StringIO()
    assert run_restore(settings, None, file=None, database_url=None, out=out) == 1
    assert "already has tables in schema public" in out.getvalue()
    assert _rows(source_db, LEDGER) == before

    [archive] = (tmp_path / "data" / "media" / "backups").glob("*.dump")
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in storage
    archive.write_bytes(bytes(data))
    out = io.StringIO()
    assert run_restore(settings, "latest", file=None, database_url=empty_db, out=out) == 1
    assert "does not match its manifest" in out.getvalue()
    assert _rows(empty_db, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'") == []
