"""The unit of work over Postgres: one pooled connection and one transaction."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from genstudio.adapters.after_commit import AfterCommit
from genstudio.adapters.supabase.compiled import Driver, SqlConnection
from genstudio.adapters.supabase.db import liveness, prepares
from genstudio.adapters.supabase.repositories.business_stats import SqlBusinessStats
from genstudio.adapters.supabase.repositories.credits import SqlLedger
from genstudio.adapters.supabase.repositories.idempotency import SqlIdempotency
from genstudio.adapters.supabase.repositories.jobs import SqlJobEvents, SqlJobs
from genstudio.adapters.supabase.repositories.media import SqlMedia, SqlUploads
from genstudio.adapters.supabase.repositories.moderation import SqlModeration
from genstudio.adapters.supabase.repositories.notifications import SqlNotifications, SqlPushTokens
from genstudio.adapters.supabase.repositories.profiles import SqlProfiles
from genstudio.adapters.supabase.repositories.purchases import SqlPurchases
from genstudio.adapters.supabase.repositories.safety import SqlSafety
from genstudio.adapters.supabase.repositories.social import SqlSocial
from genstudio.adapters.supabase.repositories.training import SqlPhotoSets, SqlTrainedModels
from genstudio.ports.unit_of_work import Effect


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
    photo_sets: SqlPhotoSets
    trained_models: SqlTrainedModels
    social: SqlSocial
    safety: SqlSafety
    notifications: SqlNotifications
    push_tokens: SqlPushTokens
    moderation: SqlModeration
    business_stats: SqlBusinessStats

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pooled: PoolProxiedConnection | None = None
        self._sqlalchemy: AsyncConnection | None = None
        self.committed = False
        self._effects = AfterCommit()

    async def __aenter__(self) -> Self:
        if self._pooled is not None:
            raise RuntimeError("a unit of work is entered once")
        # the pooled connection itself: a SQLAlchemy Connection (its transaction books,
        # five more greenlet crossings) is made only for a statement built per call
        pooled = await self._engine.raw_connection()
        raw = pooled.driver_connection
        assert isinstance(raw, psycopg.AsyncConnection)
        self._pooled = pooled
        self._driver = driver = Driver(raw, prepare=prepares(self._engine))
        self.committed = False
        sql = SqlConnection(self._connection, driver)
        self.profiles = SqlProfiles(sql)
        self.ledger = SqlLedger(sql)
        self.jobs = SqlJobs(sql)
        self.job_events = SqlJobEvents(sql)
        self.media = SqlMedia(sql)
        self.idempotency = SqlIdempotency(sql)
        self.purchases = SqlPurchases(sql)
        self.uploads = SqlUploads(sql)
        self.photo_sets = SqlPhotoSets(sql)
        self.notifications = SqlNotifications(sql)
        self.push_tokens = SqlPushTokens(sql)
        self.social = SqlSocial(sql)
        self.safety = SqlSafety(sql)
        self.trained_models = SqlTrainedModels(sql)
        self.moderation = SqlModeration(sql)
        self.business_stats = SqlBusinessStats(sql)
        return self

    def _entered(self) -> PoolProxiedConnection:
        if self._pooled is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._pooled

    async def _connection(self) -> AsyncConnection:
        """SQLAlchemy's connection over the same pooled connection, made when first
        needed; it joins the transaction the driver's statements run in."""
        pooled = self._entered()
        if self._sqlalchemy is None:
            sync = Connection(self._engine.sync_engine, connection=pooled)
            self._sqlalchemy = AsyncConnection(self._engine, sync_connection=sync)
        return self._sqlalchemy

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self._end()
        finally:
            # the committed transactions' effects, with the connection back in the pool
            await self._effects.run()

    async def _end(self) -> None:
        pooled, self._pooled = self._pooled, None
        connection, self._sqlalchemy = self._sqlalchemy, None
        if pooled is None:
            return
        self._driver.discard()  # deferred writes after the last commit are never sent
        if not self._driver.usable:
            # lost (or closed after a round trip not read through): drop it, and have
            # the pool check the others before handing them out
            checker = liveness(self._engine)
            if checker is not None:
                checker.connection_lost()
            if connection is not None:
                await connection.invalidate()
                await connection.close()
            else:
                await greenlet_spawn(pooled.invalidate)
            return
        # whatever ran after the last commit() is discarded, as in the reference
        try:
            await self._driver.rollback()
            if connection is not None:
                await connection.rollback()
        finally:
            if connection is not None:
                await connection.close()  # and so the pooled one goes back
            else:
                await greenlet_spawn(pooled.close)

    async def commit(self) -> None:
        self._entered()
        # the deferred writes and COMMIT in one round trip; then SQLAlchemy's own
        # commit, if it took part, finds the transaction ended and only closes its
        # books (its next statement begins the next one, as the driver's does)
        await self._driver.commit()
        if self._sqlalchemy is not None:
            await self._sqlalchemy.commit()
        self.committed = True
        self._effects.committed()

    async def rollback(self) -> None:
        self._entered()
        self._effects.drop()
        self._driver.discard()
        await self._driver.rollback()
        if self._sqlalchemy is not None:
            await self._sqlalchemy.rollback()

    def after_commit(self, effect: Effect) -> None:
        self._effects.add(effect)


class SqlUnitOfWorkFactory:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine)
