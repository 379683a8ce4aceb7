"""Shared fixtures.

Real services: PostgreSQL on 127.0.0.1:5432 (trust auth; a fresh database per run,
created from the ``test`` database and dropped at the end) and Redis on
127.0.0.1:6379 (database 15, flushed per test that uses it). Override with
GENSTUDIO_TEST_PG (a server URL without database) and GENSTUDIO_TEST_REDIS. Where
nothing answers there, the suite starts its own for the session (tests/servers.py):
read the addresses through ``servers.pg_server()`` and ``servers.redis_url()``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import psycopg
import pytest

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from tests import servers


def pytest_configure(config: pytest.Config) -> None:
    # the testing kit's plugin (genstudio_* fixtures, issue #23) comes by its pytest11
    # entry point (or -p); an editable install made before the entry point lacks it
    from genstudio.testing import plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "genstudio")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in servers.summary():
        terminalreporter.write_line(f"test servers: {line}")


def pytest_unconfigure(config: pytest.Config) -> None:
    servers.stop_own_servers()


def _admin_url() -> str:
    return f"{servers.pg_server()}/test"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A freshly created and migrated database for this test run."""
    from genstudio.adapters.supabase.migrate import upgrade

    name = f"genstudio_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def own_database() -> Iterator[str]:
    """A migrated database of its own for the block, dropped after it."""
    from genstudio.adapters.supabase.migrate import upgrade

    name = f"genstudio_own_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_db() -> Iterator[str]:
    """A database of its own, for a test whose workers must see no one else's jobs."""
    with own_database() as url:
        yield url


@pytest.fixture(scope="session")
async def pg_engine(pg_url: str) -> AsyncIterator[object]:
    from genstudio.adapters.supabase.db import make_engine

    engine = make_engine(pg_url, pool_size=20)
    yield engine
    await engine.dispose()


@pytest.fixture(params=["memory", "postgres"])
def uow_factory(request: pytest.FixtureRequest) -> UnitOfWorkFactory:
    """The same contract, over every unit-of-work adapter."""
    if request.param == "memory":
        return InMemoryUnitOfWorkFactory()
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory

    engine = request.getfixturevalue("pg_engine")
    return SqlUnitOfWorkFactory(engine)
