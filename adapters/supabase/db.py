"""Engines for the application database (Supabase Postgres or any Postgres >= 13)."""

from __future__ import annotations

import time
import weakref
from typing import Any, NamedTuple

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

#: seconds to wait for a TCP connection: a database that is down should fail a
#: request (and the readiness probe) quickly, not hang it until a proxy times out
CONNECT_TIMEOUT = 5

#: a pooled connection idle longer than this is pinged before it is handed out
IDLE_PING_SECONDS = 2.0

_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (as Supabase and Heroku print them) to psycopg 3.

    SQLAlchemy would otherwise pick psycopg2, which is not installed.
    """
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://...")


class Liveness:
    """When to ping a pooled connection before handing it out.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip per unit of
    work, a tenth of a submission's. Under load a connection is back in use within
    milliseconds and cannot have gone stale in between; what goes stale is a
    connection left idle (cut by Supavisor, a failover, a restart) or one that was in
    the pool when another was found broken. So a connection is pinged when it was
    idle longer than ``idle_seconds``, or was checked in before the last time a
    connection was found lost (``connection_lost``); a failed ping replaces it
    (SQLAlchemy retries the checkout with a new connection).
    """

    def __init__(self, idle_seconds: float = IDLE_PING_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.lost_at = 0.0

    def connection_lost(self) -> None:
        self.lost_at = time.monotonic()

    def install(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        dialect = sync.dialect

        @event.listens_for(sync, "checkin")
        def _checked_in(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
            record.info["checked_in"] = time.monotonic()

        @event.listens_for(sync, "checkout")
        def _checked_out(
            dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection
        ) -> None:
            since = record.info.pop("checked_in", None)
            if since is None:
                return  # just connected
            if time.monotonic() - since < self.idle_seconds and since > self.lost_at:
                return
            try:
                dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError("a pooled connection did not answer") from exc


class _Made(NamedTuple):
    """What ``make_engine`` decided for an engine, for those who get only the engine."""

    liveness: Liveness
    prepared: bool


_MADE: weakref.WeakKeyDictionary[Any, _Made] = weakref.WeakKeyDictionary()


def liveness(engine: AsyncEngine) -> Liveness | None:
    """The ``Liveness`` that ``make_engine`` gave ``engine`` (None for other engines)."""
    made = _MADE.get(engine.sync_engine)
    return None if made is None else made.liveness


def prepares(engine: AsyncEngine) -> bool:
    """Whether the driver may prepare statements on ``engine``'s connections."""
    made = _MADE.get(engine.sync_engine)
    return True if made is None else made.prepared


def make_engine(url: str, *, pool_size: int = 10, prepared: bool = True) -> AsyncEngine:
    """``prepared=False`` for a transaction-mode pooler (Supavisor on port 6543,
    PgBouncer ``pool_mode=transaction``), where a server-side prepared statement may
    be gone on the next transaction: the driver then never prepares.

    The pool is fixed at ``pool_size`` connections: a unit of work beyond them waits
    for one (``pool_timeout``). No overflow: under a sustained burst, overflow
    connections were opened and closed per request (a backend started, statements
    prepared again), which halved the throughput (docs/performance.md)."""
    # psycopg itself never prepares: the driver (adapters/supabase/compiled.py)
    # prepares its statements under names of its own, and psycopg answers any ROLLBACK
    # it ran after preparing with DEALLOCATE ALL, which would drop them too. Statements
    # built per call (the cold paths) are not prepared.
    connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT, "prepare_threshold": None}
    engine = create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=0,  # a fixed pool: see above
        pool_timeout=10,
        # a pooled connection may have been cut by Supavisor or a failover: checked
        # by Liveness, which pings only the connections that may have gone stale
        pool_pre_ping=False,
        pool_recycle=1800,
        # the connection checked in last goes out first: under a light or middling load
        # the same few backends serve the requests, warm, and Postgres spent ~0.1 ms
        # (~12%) less CPU per submission than when all ten took turns (alternating
        # runs, docs/performance.md); the rest stay idle (pinged when next used)
        pool_use_lifo=True,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )
    checker = Liveness()
    checker.install(engine)
    _MADE[engine.sync_engine] = _Made(checker, prepared)
    return engine
