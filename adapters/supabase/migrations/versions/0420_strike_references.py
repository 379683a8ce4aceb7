"""Moderation strikes counted once per refusal (issue #19), and display names moderated.

- A user has at most one strike per reference (``moderation_strikes_reference``, a
  unique index over ``(user_id, reference)`` where a reference is given): the same
  refusal met again (a request retried with its Idempotency-Key, a job's output
  checked again after a redelivery, the same refused text sent to the same place)
  counts once. ``INSERT ... ON CONFLICT DO NOTHING`` also settles two writers at once:
  the second waits for the first and writes nothing. Duplicates recorded before this
  migration are removed first (the oldest of each is kept).
- ``display_name`` joins the surfaces a strike may name.

Revision ID: 0420
Revises: 0410
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0420"
down_revision: str | Sequence[str] | None = "0410"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SURFACES = (
    "'prompt', 'caption', 'comment', 'username', 'bio', 'output', 'edit_input',"
    " 'training_photo', 'avatar'"
)


def upgrade() -> None:
    op.execute(
        """
        DELETE FROM moderation_strikes later USING moderation_strikes earlier
        WHERE later.user_id = earlier.user_id
          AND later.reference = earlier.reference
          AND (later.created_at, later.id) > (earlier.created_at, earlier.id)
        """
    )
    op.execute(
        "CREATE UNIQUE INDEX moderation_strikes_reference ON moderation_strikes"
        " (user_id, reference) WHERE reference IS NOT NULL"
    )
    op.execute("ALTER TABLE moderation_strikes DROP CONSTRAINT moderation_strikes_surface_check")
    op.execute(
        "ALTER TABLE moderation_strikes ADD CONSTRAINT moderation_strikes_surface_check"
        f" CHECK (surface IN ({_SURFACES}, 'display_name'))"
    )


def downgrade() -> None:
    op.execute("UPDATE moderation_strikes SET surface = 'username' WHERE surface = 'display_name'")
    op.execute("ALTER TABLE moderation_strikes DROP CONSTRAINT moderation_strikes_surface_check")
    op.execute(
        "ALTER TABLE moderation_strikes ADD CONSTRAINT moderation_strikes_surface_check"
        f" CHECK (surface IN ({_SURFACES}))"
    )
    op.execute("DROP INDEX IF EXISTS moderation_strikes_reference")
