"""Media of every generation mode: video posters, and uploads as media rows.

Videos carry the storage key of their poster frame (``thumbnail_key``; 0001 already
made the column, so adding it is a no-op there). Uploads (edit images and masks,
video input frames) are ``images`` rows without a job; an index finds a user's
uploads, e.g. to sweep the unused ones.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATEMENTS = [
    "ALTER TABLE videos ADD COLUMN IF NOT EXISTS thumbnail_key text",
    "COMMENT ON COLUMN videos.thumbnail_key IS "
    "'storage key of the poster frame (PNG) shown before the video plays'",
    "CREATE INDEX IF NOT EXISTS images_uploads_idx ON images (user_id, created_at DESC) "
    "WHERE job_id IS NULL",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS images_uploads_idx")
    op.execute("COMMENT ON COLUMN videos.thumbnail_key IS NULL")
