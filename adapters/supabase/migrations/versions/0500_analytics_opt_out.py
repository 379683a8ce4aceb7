"""The analytics opt-out (issue #20): ``profiles.analytics``, true until the user turns
product analytics off (``PATCH /v1/me/profile`` with ``preferences.analytics``).

The column is the server's to write: no grant to ``authenticated`` (a client reads its
own row through the existing policy, and edits it only through the API).

Revision ID: 0500
Revises: 0210
Create Date: 2026-12-10
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0500"
down_revision: str | Sequence[str] | None = "0210"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE profiles ADD COLUMN analytics boolean NOT NULL DEFAULT true")


def downgrade() -> None:
    op.execute("ALTER TABLE profiles DROP COLUMN IF EXISTS analytics")
