"""What the SQL repositories share: row conversions and the base class."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from psycopg.types.json import Jsonb
from sqlalchemy import (
    RowMapping,
    bindparam,
)

from genstudio.adapters.supabase.compiled import Driver, SqlConnection

Row = RowMapping | Mapping[str, Any]


def _utc(value: datetime) -> datetime:
    # psycopg returns timestamptz in the session's TimeZone, which Supabase leaves
    # at UTC but a self-hosted server may not
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _params(names: Any) -> dict[str, Any]:
    """``{name: bindparam(name)}`` for ``.values()`` of a compiled statement."""
    return {name: bindparam(name) for name in names}


class _Repository:
    """``_conn`` runs statements built per call; ``_sql`` the compiled ones (and
    defers writes), on the same connection and transaction."""

    def __init__(self, connection: SqlConnection) -> None:
        self._conn = connection
        self._sql: Driver = connection.driver


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps=_dumps)


def _dumps(value: Any) -> str:
    return msgspec.json.encode(value).decode()
