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

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import IsolationLevel, pq
from psycopg import errors as pg_errors
from psycopg.abc import Dumper, Loader
from psycopg.adapt import PyFormat
from psycopg.pq import DiagnosticField, ExecStatus, Format, TransactionStatus
from psycopg.rows import DictRow
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncTransaction
from sqlalchemy.sql import ClauseElement

if TYPE_CHECKING:  # for annotations only: the protocols ``connection.pgconn`` is typed by
    from psycopg.pq.abc import PGconn, PGresult

from genstudio.core.model.errors import (
    ConcurrencyConflict,
    DuplicateEntry,
    InsufficientCredits,
    NotFound,
)

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


def _refused(sqlstate: str, message: str, detail: str) -> Exception | None:
    """The domain error a refused statement means, or None if it is not a refusal.

    A foreign key violation: the caller named a row that does not exist. A unique
    violation: the row exists already. The GS codes are raised by the statements
    themselves through ``genstudio_refuse`` (migration 0007)."""
    match sqlstate:
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


def _failure(result: PGresult, encoding: str) -> tuple[str, psycopg.Error, Exception | None]:
    """A failed statement's SQLSTATE, psycopg's error for it, and its domain error if
    it was a refusal.

    psycopg's error is the class ``psycopg.errors.lookup`` gives for the SQLSTATE (or
    for its class, or ``DatabaseError``) with the server's whole message as psycopg
    words it (``pq.error_message``); its ``diag`` is empty (psycopg documents no way
    to build one from a result), so the fields a caller may need are in the message."""

    def field(code: DiagnosticField) -> str:
        value = result.error_field(code)
        return value.decode(encoding, "replace") if value else ""

    sqlstate = field(DiagnosticField.SQLSTATE)
    message = pq.error_message(result, encoding=encoding)
    primary = field(DiagnosticField.MESSAGE_PRIMARY) or message
    refusal = _refused(sqlstate, primary, field(DiagnosticField.MESSAGE_DETAIL))
    return sqlstate, _error_class(sqlstate)(message), refusal


def _error_class(sqlstate: str) -> type[psycopg.Error]:
    for code in (sqlstate, sqlstate[:2] + "000"):
        if len(code) == 5:
            try:
                return pg_errors.lookup(code)
            except KeyError:
                pass
    return psycopg.DatabaseError


class Driver:
    """Runs compiled statements on one psycopg connection (a unit of work's)."""

    __slots__ = (
        "_adapting", "_ahead", "_answers", "_connection", "_deferred", "_failed", "_prepare",
    )  # fmt: skip

    def __init__(self, connection: psycopg.AsyncConnection[Any], *, prepare: bool = True) -> None:
        self._connection = connection
        self._adapting = _Adapting(connection)  # dumps parameters and loads rows
        self._prepare = prepare  # False behind a transaction-mode pooler
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
            rows = await _round_trip(
                self._connection, self._adapting, statements, commit=commit, prepare=self._prepare
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


#: a named placeholder, ``%(name)s`` (``%(name)b``, ``%(name)t``: binary, text), as
#: SQLAlchemy's psycopg dialect writes them, or ``%%`` for a ``%``
_PLACEHOLDER = re.compile(rb"%(?:\(([^)]+)\))?(.?)", re.DOTALL)
_FORMATS = {b"s": PyFormat.AUTO, b"b": PyFormat.BINARY, b"t": PyFormat.TEXT}


class _Shape:
    """A statement as Postgres takes it: the text with ``$n`` placeholders, and which
    value goes where, worked out once per statement and encoding (as psycopg converts
    a query with named parameters: a name used twice is one ``$n``)."""

    __slots__ = ("formats", "order", "query")

    def __init__(self, sql: str, encoding: str) -> None:
        self.order: list[str] = []
        self.formats: list[PyFormat] = []
        self.query = _PLACEHOLDER.sub(self._number, sql.encode(encoding))

    def _number(self, match: re.Match[bytes]) -> bytes:
        name, kind = match.group(1), match.group(2)
        if name is None and kind == b"%":
            return b"%"
        form = _FORMATS.get(kind)
        if name is None or form is None:
            raise psycopg.ProgrammingError(
                f"only named placeholders (%(name)s, %(name)b, %(name)t) are taken here,"
                f" not {match.group(0)!r}"
            )
        key = name.decode()
        if key not in self.order:
            self.order.append(key)
            self.formats.append(form)
        n = self.order.index(key)
        if self.formats[n] is not form:
            raise psycopg.ProgrammingError(f"placeholder {key!r} has two formats")
        return b"$%d" % (n + 1)

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


Buffer = bytes | bytearray | memoryview


class _Adapting:
    """Parameters dumped and rows loaded as a cursor of the connection would, through
    psycopg's documented adaptation API: the connection's ``adapters`` map picks each
    ``Dumper`` and ``Loader`` class, made with the connection as their context (its
    encoding, its time zone); a dumper may hand a value to an upgraded one by its key
    (an int goes as int2, int4, int8 or numeric by its size). A unit of work's own:
    dumpers and loaders refer to their connection, so they are not kept beyond it."""

    __slots__ = ("_connection", "_dumpers", "_loaders", "_none_oid")

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._connection = connection
        self._dumpers: dict[PyFormat, dict[Any, Dumper]] = {form: {} for form in PyFormat}
        self._loaders: dict[tuple[int, int], Callable[[Buffer], Any]] = {}
        # None goes as NULL with the type psycopg gives it (unknown: the server infers it)
        self._none_oid = connection.adapters.get_dumper(type(None), PyFormat.TEXT).oid

    def dump(
        self, values: Sequence[Any], formats: Sequence[PyFormat]
    ) -> tuple[list[Buffer | None], tuple[int, ...], list[Format]]:
        """The values as libpq takes them, their types' oids and their formats."""
        out: list[Buffer | None] = []
        types: list[int] = []
        forms: list[Format] = []
        for value, form in zip(values, formats, strict=True):
            if value is None:
                out.append(None)
                types.append(self._none_oid)
                forms.append(Format.TEXT)
                continue
            dumper = self._dumper(value, form)
            out.append(dumper.dump(value))
            types.append(dumper.oid)
            forms.append(dumper.format)
        return out, tuple(types), forms

    def _dumper(self, value: Any, form: PyFormat) -> Dumper:
        cache = self._dumpers[form]
        cls = type(value)
        dumper = cache.get(cls)
        if dumper is None:
            made = self._connection.adapters.get_dumper(cls, form)
            dumper = cache[cls] = made(cls, self._connection)
        key = dumper.get_key(value, form)
        if key is cls:
            return dumper
        upgraded = cache.get(key)
        if upgraded is None:
            upgraded = cache[key] = dumper.upgrade(value, form)
        return upgraded

    def rows(self, result: PGresult, encoding: str) -> list[DictRow]:
        columns = [
            (
                (result.fname(i) or b"").decode(encoding),
                self._loader(result.ftype(i), result.fformat(i)),
            )
            for i in range(result.nfields)
        ]
        value = result.get_value
        rows: list[DictRow] = []
        for n in range(result.ntuples):
            row: DictRow = {}
            for i, (name, load) in enumerate(columns):
                raw = value(n, i)
                row[name] = None if raw is None else load(raw)
            rows.append(row)
        return rows

    def _loader(self, oid: int, form: int) -> Callable[[Buffer], Any]:
        load = self._loaders.get((oid, form))
        if load is None:
            adapters = self._connection.adapters
            # a type without a loader is read as text, as psycopg does (oid 0: unknown)
            made = adapters.get_loader(oid, Format(form)) or adapters.get_loader(0, Format(form))
            if made is None:
                raise psycopg.InterfaceError(f"no loader for the type {oid}")
            loader: Loader = made(oid, self._connection)
            load = self._loaders[oid, form] = loader.load
        return load


class _Session:
    """The statements the driver prepared on one connection: (query text, parameter
    types) -> server-side name. The types are part of it, as in psycopg's own cache:
    an int is sent as int2, int4 or int8 by its value, None as unknown. And the
    connection's encoding, read once (the adapters never change it)."""

    __slots__ = ("encoding", "made", "names")

    def __init__(self, encoding: str) -> None:
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self.made = 0  # names are never reused, even after one was dropped
        self.encoding = encoding

    def name(self) -> bytes:
        self.made += 1
        return b"_gs_%d" % self.made


_SESSIONS: WeakKeyDictionary[psycopg.AsyncConnection[Any], _Session] = WeakKeyDictionary()


async def _round_trip(
    connection: psycopg.AsyncConnection[Any],
    adapting: _Adapting,
    statements: list[tuple[str, dict[str, Any]]],
    *,
    commit: bool,
    prepare: bool,
) -> list[list[DictRow]]:
    """Send ``statements`` (after a ``BEGIN`` when no transaction is open, and before a
    ``COMMIT`` if asked) in pipeline mode with one flush, and read every answer.

    psycopg's own pipeline sends each statement as it is executed (a ``send`` and a
    ``poll`` per statement: a quarter of a submission's CPU, docs/performance.md);
    this queues them in libpq's buffer and flushes once, through the libpq wrapper
    psycopg documents (``connection.pgconn``, ``psycopg.pq``) and asyncio's watch on
    the connection's socket. Statements are prepared once per connection (unless the
    connection never prepares: a transaction-mode pooler, ``GENSTUDIO_DB_PREPARED=off``).
    The first error is raised after the round trip (a refusal as its domain error);
    the statements after it were not run.
    """
    pg = connection.pgconn
    session = _SESSIONS.get(connection)
    if session is None:
        session = _SESSIONS[connection] = _Session(connection.info.encoding)
    prepared = session.names
    # what each answer is: a step's rows (True), or a command's status (False), or
    # a statement's preparation (its query text: kept only if it succeeded)
    expect: list[bool | tuple[bytes, tuple[int, ...]]] = []
    failed: tuple[str, psycopg.Error, Exception | None] | None = None
    out: list[list[DictRow]] = []
    pg.enter_pipeline_mode()
    try:
        if not connection.autocommit and pg.transaction_status == TransactionStatus.IDLE:
            pg.send_query_params(_begin(connection), None)
            expect.append(False)
        for sql, params in statements:
            shape = _shape(sql, session.encoding)
            values, types, formats = adapting.dump(shape.values(params), shape.formats)
            if not prepare:
                pg.send_query_params(shape.query, values, param_formats=formats, param_types=types)
                expect.append(True)
                continue
            key = (shape.query, types)
            name = prepared.get(key)
            if name is None:
                name = prepared[key] = session.name()
                pg.send_prepare(name, shape.query, param_types=types)
                expect.append(key)
            pg.send_query_prepared(name, values, param_formats=formats)
            expect.append(True)
        if commit:
            pg.send_query_params(b"COMMIT", None)
            expect.append(False)
        pg.pipeline_sync()
        fd = connection.fileno()
        await _sent(pg, fd)
        for what in expect:
            results = await _answer(pg, fd)
            status = results[-1].status if results else ExecStatus.PIPELINE_ABORTED
            if status == ExecStatus.FATAL_ERROR and failed is None:
                failed = _failure(results[-1], session.encoding)
            if isinstance(what, tuple):
                if status != ExecStatus.COMMAND_OK:  # not prepared after all
                    prepared.pop(what, None)
            elif what:
                tuples = status == ExecStatus.TUPLES_OK
                out.append(adapting.rows(results[-1], session.encoding) if tuples else [])
        await _answer(pg, fd)  # the sync's
    except BaseException:
        # not read through (cancelled while waiting, or lost): the protocol is out
        # of step, so the connection is closed here and the pool drops it (the unit
        # of work sees it broken); what it had prepared goes with it
        _SESSIONS.pop(connection, None)
        pg.finish()
        raise
    pg.exit_pipeline_mode()
    if failed is not None:
        sqlstate, error, refusal = failed
        if sqlstate == "26000":  # invalid_sql_statement_name: someone deallocated
            # them (DISCARD ALL, DEALLOCATE ALL): prepare again from the next round trip
            _SESSIONS.pop(connection, None)
        if refusal is not None:
            raise refusal from error
        raise error
    return out


def _begin(connection: psycopg.AsyncConnection[Any]) -> bytes:
    """The ``BEGIN`` psycopg sends for the connection's transaction characteristics."""
    parts = [b"BEGIN"]
    if connection.isolation_level is not None:
        level = IsolationLevel(connection.isolation_level).name.replace("_", " ")
        parts.append(b"ISOLATION LEVEL " + level.encode())
    if connection.read_only is not None:
        parts.append(b"READ ONLY" if connection.read_only else b"READ WRITE")
    if connection.deferrable is not None:
        parts.append(b"DEFERRABLE" if connection.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


async def _sent(pg: PGconn, fd: int) -> None:
    """Flush what libpq holds for the server. The connection is nonblocking (psycopg
    makes every connection so): the socket may take only part of it, and what the
    server sends meanwhile is read in, so that neither side waits on the other."""
    while pg.flush():
        if await _ready(fd, write=True):
            pg.consume_input()


async def _answer(pg: PGconn, fd: int) -> list[PGresult]:
    """The results of the pipeline's next statement (its end is libpq's None), or its
    sync's (alone); waits on the socket only while libpq has not got all of it."""
    results: list[PGresult] = []
    while True:
        while pg.is_busy():
            await _ready(fd)
            pg.consume_input()
        result = pg.get_result()
        if result is None:
            return results
        results.append(result)
        if result.status == ExecStatus.PIPELINE_SYNC:
            return results


async def _ready(fd: int, *, write: bool = False) -> bool:
    """Wait until the socket can be read (True) or, with ``write``, written (False)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        if not ready.done():
            ready.set_result(True)

    def writable() -> None:
        if not ready.done():
            ready.set_result(False)

    loop.add_reader(fd, readable)
    if write:
        loop.add_writer(fd, writable)
    try:
        return await ready
    finally:
        loop.remove_reader(fd)
        if write:
            loop.remove_writer(fd)


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
