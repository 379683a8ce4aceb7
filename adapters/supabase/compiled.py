"""Statements built with SQLAlchemy Core once, at import, and run on psycopg directly.

The repositories' frequent statements (everything a submission and a job's run
touch) are fixed in shape: only their values change. Building, coercing,
cache-keying and compiling a Core statement on every call, then crossing the async
engine's greenlet bridge, cost more CPU than the round trip itself (see
docs/performance.md). So they are compiled once here, with named parameters, and
run on the unit of work's own psycopg connection, in its transaction. SQLAlchemy
keeps what it is good at: the table definitions, building the SQL, the pool, and
the statements that change shape per call.

Round trips are the other cost, so the driver saves them where nothing is lost:

- a write whose answer the caller does not need (a job, a hold, an event, a ledger
  entry on the submission path, a lot's new remaining) is *deferred*: it travels with
  the next statement in one pipeline (psycopg's pipeline mode), or with the COMMIT.
  Its refusal is raised there, and the unit of work is lost then as it would have
  been at once: nothing is committed. A deferred write never needs its answer read
  in Python: its conditions are the database's (a constraint, a foreign key, or the
  statement raising through ``genstudio_refuse``, migration 0007), so a refused one
  aborts the transaction and the COMMIT behind it in the same round trip commits
  nothing.
- the first statement of a transaction travels with its ``BEGIN``.
- a read the caller announces (``ahead``: the account's lock and lots, announced
  before the idempotency key's claim) travels *after* the next statement, in its
  round trip, and is answered from there when it is asked for.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import DictRow, dict_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import ClauseElement

from core.errors import ConcurrencyConflict, DuplicateEntry, InsufficientCredits, NotFound

_DIALECT = PGDialect_psycopg()  # type: ignore[no-untyped-call]


class Compiled:
    """One statement as psycopg runs it: SQL text with ``%(name)s`` placeholders.

    Constants inside the statement (``remaining > 0``) become parameters with their
    value kept here; ``bindparam("name")`` placeholders are filled at each call.
    """

    __slots__ = ("defaults", "sql")

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        self.sql = str(compiled)
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}

    def __repr__(self) -> str:
        return f"Compiled({self.sql!r})"


def _refused(exc: psycopg.Error) -> Exception | None:
    """The domain error a refused statement means, or None if it is not a refusal.

    A foreign key violation: the caller named a row that does not exist. A unique
    violation: the row exists already. The GS codes are raised by the statements
    themselves through ``genstudio_refuse`` (migration 0007)."""
    message = exc.diag.message_primary or str(exc)
    detail = exc.diag.message_detail or ""
    match exc.sqlstate:
        case "23503":  # foreign_key_violation
            return NotFound(detail or "a referenced row does not exist")
        case "23505":  # unique_violation
            return DuplicateEntry(detail or message)
        case "GS402":
            required, available = (int(n) for n in detail.split())
            return InsufficientCredits(required=required, available=available)
        case "GS404":
            return NotFound(message)
        case "GS409":
            return ConcurrencyConflict(message)
        case "GS422":
            return ValueError(message)
    return None


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except psycopg.Error as exc:
        refusal = _refused(exc)
        if refusal is None:
            raise
        raise refusal from exc


class Driver:
    """Runs compiled statements on one psycopg connection (a unit of work's)."""

    __slots__ = ("_ahead", "_answers", "_connection", "_cursor", "_deferred", "_failed", "_other")

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection
        self._cursor = connection.cursor(row_factory=dict_row)
        self._other = connection.cursor(row_factory=dict_row)  # for ``both``
        self._deferred: list[tuple[str, dict[str, Any]]] = []
        # reads announced for the next round trip, and their answers once it came back
        self._ahead: dict[Hashable, list[tuple[str, dict[str, Any]]]] = {}
        self._answers: dict[Hashable, list[list[DictRow]]] = {}
        # a deferred write failed: the transaction holds writes made after it, so it
        # must not commit, even if the caller caught the error
        self._failed: BaseException | None = None

    def defer(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        """Send ``statement`` with the next one, or with the commit. Its answer is not
        read: a refusal must be the database's error (see the module's docstring)."""
        self._deferred.append((statement.sql, {**statement.defaults, **values}))

    @property
    def broken(self) -> bool:
        """The connection was lost (under one of our statements, or any other)."""
        return self._connection.broken

    def ahead(self, key: Hashable, *reads: tuple[Compiled, Mapping[str, Any]]) -> None:
        """Send ``reads`` after the next statement, in its round trip (each with its
        own snapshot, after what came before it); ``answered(key)`` then gives their
        rows. Announced reads never go with a COMMIT: a unit that commits first
        never asked for them."""
        self._ahead[key] = [(s.sql, {**s.defaults, **values}) for s, values in reads]

    def answered(self, key: Hashable) -> list[list[DictRow]] | None:
        """The rows of the reads announced as ``key``, once (None: not sent)."""
        return self._answers.pop(key, None)

    @property
    def usable(self) -> bool:
        return not (self._connection.closed or self._connection.broken)

    async def rollback(self) -> None:
        """End the transaction, if one is open (nothing is sent otherwise)."""
        await self._connection.rollback()

    def discard(self) -> None:
        """Forget the deferred statements (the transaction is being rolled back)."""
        self._deferred.clear()
        self._ahead.clear()
        self._answers.clear()
        self._failed = None

    async def run(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        await self._execute(statement, values)

    async def one(self, statement: Compiled, values: Mapping[str, Any]) -> DictRow | None:
        await self._execute(statement, values)
        return await self._cursor.fetchone()

    async def all(self, statement: Compiled, values: Mapping[str, Any]) -> list[DictRow]:
        await self._execute(statement, values)
        return await self._cursor.fetchall()

    async def both(
        self,
        first: Compiled,
        first_values: Mapping[str, Any],
        second: Compiled,
        second_values: Mapping[str, Any],
    ) -> tuple[list[DictRow], list[DictRow]]:
        """Two statements in one round trip, the second run after the first (READ
        COMMITTED: with its own snapshot, so it sees what the first waited for)."""
        await self._pipelined(
            (self._other, first.sql, {**first.defaults, **first_values}),
            (self._cursor, second.sql, {**second.defaults, **second_values}),
        )
        return await self._other.fetchall(), await self._cursor.fetchall()

    async def flush(self) -> None:
        """Send the deferred statements now (before a statement that is not ours)."""
        if self._deferred:
            await self._pipelined()

    async def commit(self) -> None:
        """COMMIT, with the deferred statements ahead of it in the same round trip: if
        one of them is refused, the transaction aborts and the COMMIT commits nothing."""
        if self._failed is not None:
            raise RuntimeError(
                "a deferred write of this unit of work failed; it can only roll back"
            ) from self._failed
        self._ahead.clear()
        self._answers.clear()
        if self._deferred:
            await self._pipelined(commit=True)
        else:
            await self._connection.commit()

    async def _execute(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        params = {**statement.defaults, **values}
        if (
            self._deferred
            or self._ahead
            or self._connection.info.transaction_status == TransactionStatus.IDLE
        ):
            # waiting writes, or a transaction to open: all in one round trip
            await self._pipelined((self._cursor, statement.sql, params))
            return
        with _refusals():
            await self._cursor.execute(statement.sql, params)

    async def _pipelined(
        self, *steps: tuple[psycopg.AsyncCursor[DictRow], str, dict[str, Any]], commit: bool = False
    ) -> None:
        deferred, self._deferred = self._deferred, []
        ahead: list[tuple[Hashable, list[psycopg.AsyncCursor[DictRow]]]] = []
        try:
            with _refusals():
                async with self._connection.pipeline():
                    for sql, params in deferred:
                        await self._cursor.execute(sql, params)
                    for cursor, sql, params in steps:
                        await cursor.execute(sql, params)
                    if commit:
                        await self._connection.commit()
                    else:
                        ahead = await self._send_ahead()
        except BaseException as exc:
            if deferred:
                self._failed = exc
            raise
        for key, cursors in ahead:
            self._answers[key] = [await cursor.fetchall() for cursor in cursors]

    async def _send_ahead(self) -> list[tuple[Hashable, list[psycopg.AsyncCursor[DictRow]]]]:
        sent = []
        for key, reads in self._ahead.items():
            cursors = []
            for sql, params in reads:
                cursor = self._connection.cursor(row_factory=dict_row)
                await cursor.execute(sql, params)
                cursors.append(cursor)
            sent.append((key, cursors))
        self._ahead.clear()
        return sent


class SqlConnection:
    """The unit of work's SQLAlchemy connection, for the statements built per call,
    made when first needed: it sends the driver's deferred statements first, so that
    they see them."""

    __slots__ = ("_connect", "driver")

    def __init__(self, connect: Callable[[], Awaitable[AsyncConnection]], driver: Driver) -> None:
        self._connect = connect
        self.driver = driver

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        await self.driver.flush()
        connection = await self._connect()
        return await connection.execute(statement, parameters)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[AsyncTransaction]:
        await self.driver.flush()
        connection = await self._connect()
        async with connection.begin_nested() as savepoint:
            yield savepoint
