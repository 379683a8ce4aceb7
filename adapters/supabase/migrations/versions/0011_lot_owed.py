"""credit_lots.owed: credits a partial refund of a pack claimed while jobs held them.
The refund takes what the pack's lot has left; the rest was lost when the job's hold
was released back into the still-live lot (the user kept refunded credits). Now the
lot records it, and a released hold pays it back first.

Lots already past such a refund owe nothing: what their refunds missed was not
recorded.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE credit_lots ADD COLUMN owed integer NOT NULL DEFAULT 0"
        " CONSTRAINT credit_lots_owed_nonnegative CHECK (owed >= 0)"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE credit_lots DROP COLUMN IF EXISTS owed")
