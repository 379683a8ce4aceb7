"""store_transactions.revocation_event_at: when the store's latest refund news about a
pack happened, so that news delivered out of order (a reversal before the refund it
reverses) is applied in the order it happened, not the order it arrived.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE store_transactions ADD COLUMN revocation_event_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE store_transactions DROP COLUMN IF EXISTS revocation_event_at")
