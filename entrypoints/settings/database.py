"""Database settings (``DATABASE_URL``, ``GENSTUDIO_DB_*``) and Redis (``REDIS_URL``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import msgspec

from genstudio.entrypoints.settings.env import Env


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = ("DATABASE_URL", "GENSTUDIO_DB_")

    url: str | None = None  # None: an embedded PostgreSQL under the data directory
    pool_size: int = 10
    prepared: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseSettings:
        e = Env(env)
        return cls(
            url=e.opt("DATABASE_URL"),
            pool_size=e.integer("GENSTUDIO_DB_POOL_SIZE", 10),
            prepared=e.switch("GENSTUDIO_DB_PREPARED", True),
        )


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    PREFIXES: ClassVar[tuple[str, ...]] = ("REDIS_URL",)

    url: str | None = None  # None: queues and limits in Postgres / in process

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RedisSettings:
        return cls(url=Env(env).opt("REDIS_URL"))
