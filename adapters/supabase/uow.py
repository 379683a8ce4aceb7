"""The unit of work over Postgres: one pooled connection and one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.supabase.compiled import Driver, SqlConnection
from adapters.supabase.db import liveness
from adapters.supabase.purchases import SqlPurchases
from adapters.supabase.repositories import (
    SqlIdempotency,
    SqlJobEvents,
    SqlJobs,
    SqlLedger,
    SqlMedia,
    SqlProfiles,
    SqlUploads,
)


class SqlUnitOfWork:
    """READ COMMITTED, like the in-memory reference: a statement sees what others
    committed before it started, and the row locks (``lock_account``,
    ``jobs.get(lock=True)``) are what serialize concurrent writers."""

    profiles: SqlProfiles
    ledger: SqlLedger
    jobs: SqlJobs
    job_events: SqlJobEvents
    media: SqlMedia
    idempotency: SqlIdempotency
    purchases: SqlPurchases
    uploads: SqlUploads

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self.committed = False

    async def __aenter__(self) -> Self:
        if self._connection is not None:
            raise RuntimeError("a unit of work is entered once")
        connection = await self._engine.connect()
        try:
            await connection.begin()
            # the same connection and transaction, for the compiled statements
            raw = (await connection.get_raw_connection()).driver_connection
            assert isinstance(raw, psycopg.AsyncConnection)
            driver = Driver(raw)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._driver = driver
        self.committed = False
        sql = SqlConnection(connection, driver)
        self.profiles = SqlProfiles(sql)
        self.ledger = SqlLedger(sql)
        self.jobs = SqlJobs(sql)
        self.job_events = SqlJobEvents(sql)
        self.media = SqlMedia(sql)
        self.idempotency = SqlIdempotency(sql)
        self.purchases = SqlPurchases(sql)
        self.uploads = SqlUploads(sql)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        self._driver.discard()  # deferred writes after the last commit are never sent
        if self._driver.broken:
            # lost under a compiled statement, which SQLAlchemy did not see: drop it,
            # and have the pool check the others before handing them out
            checker = liveness(self._engine)
            if checker is not None:
                checker.connection_lost()
            await connection.invalidate()
            await connection.close()
            return
        # whatever ran after the last commit() is discarded, as in the reference
        try:
            await connection.rollback()
        finally:
            await connection.close()

    def _conn(self) -> AsyncConnection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._connection

    async def commit(self) -> None:
        connection = self._conn()
        # the deferred writes and COMMIT in one round trip; then SQLAlchemy's own
        # commit finds the transaction ended and only closes its books
        await self._driver.commit()
        await connection.commit()
        self.committed = True
        # begin the next one at once (that sends nothing: psycopg opens it with the
        # next statement), so that what the compiled statements do after this commit
        # is committed by the next commit() too
        await connection.begin()

    async def rollback(self) -> None:
        connection = self._conn()
        self._driver.discard()
        await connection.rollback()
        await connection.begin()


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
