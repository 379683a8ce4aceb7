"""Trust and safety (issue #19): refund news kept before its purchase is claimed, the
store environment of each transaction, and privileges the API roles should never
have had.

- ``early_revocations``: a refund or revocation of a transaction nobody had claimed
  (keep the signed purchase, get it refunded, redeem it: refused now).
- ``store_transactions.environment``: ``Production`` or ``Sandbox`` (Apple; null for
  Google and for rows from before), so Sandbox purchases honoured in production can
  be told apart.
- ``upload_intents`` lacked the usual revoke: Supabase's default privileges gave
  ``anon`` and ``authenticated`` every privilege on it (TRUNCATE too; RLS does not
  stop TRUNCATE).
- ``genstudio_refuse()`` was executable by anyone (PUBLIC by default).

Revision ID: 0400
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0400"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REFUSE = "genstudio_refuse(text, text, text)"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE early_revocations (
            store text NOT NULL CHECK (store IN ('apple', 'google')),
            transaction_id text NOT NULL,
            original_transaction_id text,
            reason text NOT NULL CHECK (reason IN ('refund', 'revoke')),
            reversed boolean NOT NULL DEFAULT false,
            occurred_at timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (store, transaction_id)
        )
        """
    )
    op.execute(
        "CREATE INDEX early_revocations_original"
        " ON early_revocations (store, original_transaction_id)"
    )
    op.execute(
        "ALTER TABLE store_transactions ADD COLUMN environment text"
        " CHECK (environment IN ('Production', 'Sandbox'))"
    )
    for table in ("early_revocations", "upload_intents"):
        # the service role only (RLS on, no policies): clients never see these tables
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(f"REVOKE EXECUTE ON FUNCTION {_REFUSE} FROM PUBLIC, anon, authenticated")
    op.execute(f"GRANT EXECUTE ON FUNCTION {_REFUSE} TO service_role")


def downgrade() -> None:
    op.execute(f"GRANT EXECUTE ON FUNCTION {_REFUSE} TO PUBLIC")
    op.execute("ALTER TABLE store_transactions DROP COLUMN IF EXISTS environment")
    op.execute("DROP TABLE IF EXISTS early_revocations")
