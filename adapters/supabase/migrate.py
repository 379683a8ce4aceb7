"""Schema migrations, run programmatically (``genstudio migrate``, test fixtures).

The Alembic scripts ship inside the package, found relative to this file, so
this works from an installed wheel without an ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, pool

from genstudio.adapters.supabase.db import CONNECT_TIMEOUT, normalise_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _run(database_url: str, action: str, revision: str) -> None:
    # here, not at import: a process that never migrates (a worker) does not load
    # Alembic and Mako
    from alembic import command
    from alembic.config import Config

    engine = create_engine(
        normalise_url(database_url),
        poolclass=pool.NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT},
    )
    try:
        with engine.connect() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            # a connection rather than sqlalchemy.url: the ini parser would choke
            # on the percent-escapes of a URL-encoded password
            config.attributes["connection"] = connection
            getattr(command, action)(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the database to ``revision``; a no-op where it is already there."""
    _run(database_url, "upgrade", revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    _run(database_url, "downgrade", revision)
