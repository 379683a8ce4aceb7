"""Supabase: Postgres through SQLAlchemy 2 Core and psycopg 3, the Alembic schema with
its RLS policies, and Supabase Auth JWT verification.

Works against any PostgreSQL >= 13 too: the migration creates the few Supabase
objects (``auth.users``, ``auth.uid()``, the API roles) where they are missing.
"""

from genstudio.adapters.supabase.auth import SupabaseJwtVerifier, mint_token
from genstudio.adapters.supabase.db import make_engine, normalise_url
from genstudio.adapters.supabase.migrate import downgrade, upgrade
from genstudio.adapters.supabase.uow import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "SupabaseJwtVerifier",
    "downgrade",
    "make_engine",
    "mint_token",
    "normalise_url",
    "upgrade",
]
