"""Statements built with SQLAlchemy Core once, at import, and run on psycopg directly.

The repositories' frequent statements (everything a submission and a job's run
touch) are fixed in shape: only their values change. Building, coercing,
cache-keying and compiling a Core statement on every call, then crossing the async
engine's greenlet bridge, cost more CPU than the round trip itself (see
docs/performance.md). So they are compiled once here, with named parameters, and
run on the unit of work's own psycopg connection, in its transaction. SQLAlchemy
keeps what it is good at: the table definitions, building the SQL, the pool and its
pre-ping, and the statements that change shape per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.rows import DictRow, dict_row
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql import ClauseElement

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


class Driver:
    """Runs compiled statements on one psycopg connection (a unit of work's)."""

    __slots__ = ("_cursor",)

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self._cursor = connection.cursor(row_factory=dict_row)

    async def run(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        await self._cursor.execute(statement.sql, {**statement.defaults, **values})

    async def one(self, statement: Compiled, values: Mapping[str, Any]) -> DictRow | None:
        await self._cursor.execute(statement.sql, {**statement.defaults, **values})
        return await self._cursor.fetchone()

    async def all(self, statement: Compiled, values: Mapping[str, Any]) -> list[DictRow]:
        await self._cursor.execute(statement.sql, {**statement.defaults, **values})
        return await self._cursor.fetchall()
