"""Engines for the application database (Supabase Postgres or any Postgres >= 13)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: seconds to wait for a TCP connection: a database that is down should fail a
#: request (and the readiness probe) quickly, not hang it until a proxy times out
CONNECT_TIMEOUT = 5

_SCHEMES = ("postgresql+psycopg://", "postgresql://", "postgres://")


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (as Supabase and Heroku print them) to psycopg 3.

    SQLAlchemy would otherwise pick psycopg2, which is not installed.
    """
    for scheme in _SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('://', 1)[0]}://...")


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        normalise_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=10,
        # a pooled connection may have been cut by Supavisor or a failover
        pool_pre_ping=True,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
