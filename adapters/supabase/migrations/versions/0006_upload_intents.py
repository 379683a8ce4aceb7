"""Upload intents: uploads stored ahead of the transaction that records them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # no foreign key to profiles: an upload is expected before the submission that
    # creates a first-time user's profile; the reconciler removes what stays behind
    op.execute(
        """
        CREATE TABLE upload_intents (
            storage_key text PRIMARY KEY,
            user_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX upload_intents_created_at ON upload_intents (created_at)")
    # the service role only (RLS on, no policies): users never see this table
    op.execute("ALTER TABLE upload_intents ENABLE ROW LEVEL SECURITY")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS upload_intents")
