"""genstudio_refuse: a statement refuses a write by raising, so the COMMIT can travel with it.

A deferred write (adapters/supabase/compiled.py) is sent with the next statement or
with the COMMIT, in one round trip. When the write's condition is checked in Python
after it ran, the COMMIT has to wait for that check: one more round trip. A statement
that raises when its condition fails aborts the transaction by itself, so the COMMIT
behind it in the pipeline commits nothing. This function is how a statement raises:
``CASE WHEN <ok> THEN true ELSE genstudio_refuse(<code>, <message>) END`` (CASE
evaluates the call only when the condition fails; the function is VOLATILE, so it is
never folded at plan time).

The codes are genstudio's own SQLSTATEs (class GS); the adapter maps them to domain
errors: GS402 insufficient credits (detail: "<required> <available>"), GS404 a
missing row, GS409 a concurrency conflict, GS422 a value out of range.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION genstudio_refuse(code text, message text, detail text DEFAULT NULL)
        RETURNS boolean
        LANGUAGE plpgsql VOLATILE
        AS $$
        BEGIN
            RAISE EXCEPTION USING ERRCODE = code, MESSAGE = message, DETAIL = coalesce(detail, '');
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS genstudio_refuse(text, text, text)")
