"""Captions on media (searched and moderated later); merges the 0002-0004 branches.

Revision ID: 0005
Revises: 0002, 0003, 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = ("0002", "0003", "0004")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("images", "videos"):
        op.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS caption text")


def downgrade() -> None:
    for table in ("images", "videos"):
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS caption")
