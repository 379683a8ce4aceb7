"""Alembic environment: runs the hand-written migrations in ``versions/``.

``adapters.supabase.migrate`` hands over an open connection in
``config.attributes["connection"]``; the ``alembic`` command line instead sets
``sqlalchemy.url``. There is no autogenerate: migrations spell out their DDL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

#: any constant will do, as long as nothing else takes the same advisory lock
_MIGRATION_LOCK = 0x67656E73  # "gens"


def _run(connection: Connection) -> None:
    context.configure(connection=connection, transaction_per_migration=False)
    with context.begin_transaction():
        # app processes starting together would otherwise race through the same
        # DDL; the second waits here and then finds the version already current
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    given: Connection | None = context.config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "set sqlalchemy.url or pass a connection"
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
