"""Statements built with SQLAlchemy Core once, at import, and run on psycopg directly.

The repositories' frequent statements (everything a submission and a job's run
touch) are fixed in shape: only their values change. Building, coercing,
cache-keying and compiling a Core statement on every call, then crossing the async
engine's greenlet bridge, cost more CPU than the round trip itself (see
docs/performance.md). So they are compiled once here, with named parameters, and
run on the unit of work's own psycopg connection, in its transaction. SQLAlchemy
keeps what it is good at: the table definitions, building the SQL, the pool, and
the statements that change shape per call.

Round trips are the other cost, so the driver saves them where nothing is lost. Every
round trip is one pipeline (libpq's pipeline mode) sent with one flush
(``_round_trip``), and:

- a write whose answer the caller does not need (a job, a hold, an event, a ledger
  entry on the submission path, a lot's new remaining) is *deferred*: it travels with
  the next statement in its round trip, or with the COMMIT.
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
from weakref import WeakKeyDictionary

import psycopg
from psycopg import errors as pg_errors
from psycopg._queries import _query2pg_nocache
from psycopg.abc import PQGen
from psycopg.abc import Transformer as Adapting
from psycopg.adapt import Transformer
from psycopg.generators import fetch_many, send
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.pq.abc import PGconn, PGresult
from psycopg.rows import DictRow
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import ClauseElement

from core.model.errors import ConcurrencyConflict, DuplicateEntry, InsufficientCredits, NotFound

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

    __slots__ = ("_ahead", "_answers", "_connection", "_deferred", "_failed", "_prepare", "_tx")

    def __init__(self, connection: psycopg.AsyncConnection[Any], *, prepare: bool = True) -> None:
        self._connection = connection
        self._prepare = prepare  # False behind a transaction-mode pooler
        self._tx = Transformer(connection)  # adapts parameters and rows, as a cursor's
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
        """Neither lost (under one of our statements, or SQLAlchemy's, which then
        closed it) nor closed by a round trip that was not read through."""
        return not (self._connection.closed or self._connection.broken)

    async def rollback(self) -> None:
        """End the transaction, if one is open (nothing is sent otherwise; and without
        the connection's lock and wait when it is plainly idle, as after a commit)."""
        if self._connection.pgconn.transaction_status != TransactionStatus.IDLE:
            await self._connection.rollback()

    def discard(self) -> None:
        """Forget the deferred statements (the transaction is being rolled back)."""
        self._deferred.clear()
        self._ahead.clear()
        self._answers.clear()
        self._failed = None

    async def run(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        await self._pipelined((statement.sql, {**statement.defaults, **values}))

    async def one(self, statement: Compiled, values: Mapping[str, Any]) -> DictRow | None:
        rows = await self.all(statement, values)
        return rows[0] if rows else None

    async def all(self, statement: Compiled, values: Mapping[str, Any]) -> list[DictRow]:
        [rows] = await self._pipelined((statement.sql, {**statement.defaults, **values}))
        return rows

    async def both(
        self,
        first: Compiled,
        first_values: Mapping[str, Any],
        second: Compiled,
        second_values: Mapping[str, Any],
    ) -> tuple[list[DictRow], list[DictRow]]:
        """Two statements in one round trip, the second run after the first (READ
        COMMITTED: with its own snapshot, so it sees what the first waited for)."""
        one, two = await self._pipelined(
            (first.sql, {**first.defaults, **first_values}),
            (second.sql, {**second.defaults, **second_values}),
        )
        return one, two

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

    async def _pipelined(
        self, *steps: tuple[str, dict[str, Any]], commit: bool = False
    ) -> list[list[DictRow]]:
        """One round trip: the deferred statements, ``steps``, then the announced reads
        (or the COMMIT); the rows of each step."""
        deferred, self._deferred = self._deferred, []
        ahead = list(self._ahead.items())  # none with a commit: it dropped them
        self._ahead.clear()
        statements = [*deferred, *steps, *(read for _, reads in ahead for read in reads)]
        try:
            with _refusals():
                rows = await _round_trip(
                    self._connection, self._tx, statements, commit=commit, prepare=self._prepare
                )
        except BaseException as exc:
            if deferred:
                self._failed = exc
            raise
        rest = rows[len(deferred) :]
        answers = rest[len(steps) :]
        for key, reads in ahead:
            self._answers[key], answers = answers[: len(reads)], answers[len(reads) :]
        return rest[: len(steps)]


class _Shape:
    """A statement as Postgres takes it: the text with ``$n`` placeholders, and which
    value goes where. What psycopg's ``PostgresQuery.convert`` works out on every
    call (it caches the parse, but still encodes the text, looks the parse up, checks
    and reorders the values), worked out once per statement and encoding."""

    __slots__ = ("formats", "order", "query")

    def __init__(self, sql: str, encoding: str) -> None:
        self.query, self.formats, order, _ = _query2pg_nocache(sql.encode(encoding), encoding)
        self.order: list[str] = order or []

    def values(self, params: Mapping[str, Any]) -> list[Any]:
        try:
            return [params[name] for name in self.order]
        except KeyError:
            missing = ", ".join(sorted(n for n in self.order if n not in params))
            raise psycopg.ProgrammingError(f"query parameter missing: {missing}") from None


_SHAPES: dict[tuple[str, str], _Shape] = {}
#: the statements are compiled once, at import (a few dozen); past this many, a
#: statement's shape is worked out for its call only, so a caller that builds SQL per
#: call cannot grow the cache without end
_MAX_SHAPES = 1024


def _shape(sql: str, encoding: str) -> _Shape:
    shape = _SHAPES.get((sql, encoding))
    if shape is None:
        shape = _Shape(sql, encoding)
        if len(_SHAPES) < _MAX_SHAPES:
            _SHAPES[sql, encoding] = shape
    return shape


class _Prepared:
    """The statements prepared on one connection: (query text, parameter types) ->
    server-side name. The types are part of it, as in psycopg's own cache: an int is
    sent as int2, int4 or int8 by its value, None as unknown. And the connection's
    encoding, read once (the adapters never change it)."""

    __slots__ = ("encoding", "made", "names")

    def __init__(self, encoding: str) -> None:
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.made = 0  # names are never reused, even after one was dropped
        self.encoding = encoding

    def name(self) -> bytes:
        self.made += 1
        return b"_gs_%d" % self.made


_PREPARED: WeakKeyDictionary[psycopg.AsyncConnection[Any], _Prepared] = WeakKeyDictionary()


async def _round_trip(
    connection: psycopg.AsyncConnection[Any],
    tx: Adapting,
    statements: list[tuple[str, dict[str, Any]]],
    *,
    commit: bool,
    prepare: bool,
) -> list[list[DictRow]]:
    """Send ``statements`` (after a ``BEGIN`` when no transaction is open, and before a
    ``COMMIT`` if asked) in pipeline mode with one flush, and read every answer.

    psycopg's own pipeline sends each statement as it is executed (a ``send`` and a
    ``poll`` per statement: a quarter of a submission's CPU, docs/performance.md);
    this queues them in libpq's buffer and flushes once, through psycopg's
    low-level API, with its parameter adaptation, row loading and errors. Statements
    are prepared once per connection (unless the connection never prepares: a
    transaction-mode pooler, ``GENSTUDIO_DB_PREPARED=off``). The first error is
    raised after the round trip; the statements after it were not run.
    """
    pg = connection.pgconn
    state = _PREPARED.get(connection)
    if state is None:
        state = _PREPARED[connection] = _Prepared(connection.info.encoding)
    prepared = state.names
    async with connection.lock:
        # what each answer is: a step's rows (True), or a command's status (False), or
        # a statement's preparation (its query text: kept only if it succeeded)
        expect: list[bool | tuple[bytes, tuple[int, ...]]] = []
        pg.enter_pipeline_mode()
        try:
            if not connection.autocommit and pg.transaction_status == TransactionStatus.IDLE:
                pg.send_query_params(connection._get_tx_start_command(), None)
                expect.append(False)
            for sql, params in statements:
                shape = _shape(sql, state.encoding)
                values = tx.dump_sequence(shape.values(params), shape.formats)
                types = tx.types or ()
                if not prepare:
                    pg.send_query_params(
                        shape.query, values, param_formats=tx.formats, param_types=types
                    )
                    expect.append(True)
                    continue
                key = (shape.query, types)
                name = prepared.get(key)
                if name is None:
                    name = prepared[key] = state.name()
                    pg.send_prepare(name, shape.query, param_types=types)
                    expect.append(key)
                pg.send_query_prepared(name, values, param_formats=tx.formats)
                expect.append(True)
            if commit:
                pg.send_query_params(b"COMMIT", None)
                expect.append(False)
            pg.pipeline_sync()
            await connection.wait(send(pg))
            error: psycopg.Error | None = None
            out: list[list[DictRow]] = []
            # every answer, the sync's own last, in one wait
            answers = await connection.wait(_answers(pg, len(expect) + 1))
            for what, results in zip(expect, answers, strict=False):
                status = results[-1].status if results else ExecStatus.PIPELINE_ABORTED
                if status == ExecStatus.FATAL_ERROR and error is None:
                    error = pg_errors.error_from_result(
                        results[-1], encoding=connection.info.encoding
                    )
                if isinstance(what, tuple):
                    if status != ExecStatus.COMMAND_OK:  # not prepared after all
                        prepared.pop(what, None)
                elif what:
                    out.append(_rows(tx, results[-1]) if status == ExecStatus.TUPLES_OK else [])
        except BaseException:
            # not read through (cancelled while waiting, or lost): the protocol is out
            # of step, so the connection is closed here and the pool drops it (the unit
            # of work sees it broken); what it had prepared goes with it
            _PREPARED.pop(connection, None)
            pg.finish()
            raise
        pg.exit_pipeline_mode()
    if error is not None:
        if error.sqlstate == "26000":  # invalid_sql_statement_name: someone deallocated
            # them (DISCARD ALL, DEALLOCATE ALL): prepare again from the next round trip
            _PREPARED.pop(connection, None)
        raise error
    return out


def _answers(pg: PGconn, count: int) -> PQGen[list[list[PGresult]]]:
    """The next ``count`` answers of a pipeline (each the results ``fetch_many`` gives
    for one statement), read as they come in one wait: awaiting psycopg's wait once
    per answer went through the event loop's machinery for each, even for answers
    already in."""
    answers = []
    for _ in range(count):
        answers.append((yield from fetch_many(pg)))
    return answers


def _rows(tx: Adapting, result: PGresult) -> list[DictRow]:
    tx.set_pgresult(result)
    names = [(result.fname(i) or b"").decode() for i in range(result.nfields)]
    rows: list[DictRow] = tx.load_rows(
        0, result.ntuples, lambda values: dict(zip(names, values, strict=True))
    )
    return rows


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
