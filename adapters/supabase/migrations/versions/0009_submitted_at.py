"""jobs.submitted_at: when the provider accepted the job's current attempt, so that
the job timeout runs from there whichever worker follows the job (it restarted with
every takeover). Cleared when the job goes back to the queue for a new attempt.

Jobs already at a provider are timed from their last change (their lease's latest
renewal, about now), which is what the release without the column did at a takeover;
from then on a takeover no longer restarts their clock.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE jobs ADD COLUMN submitted_at timestamptz")
    op.execute(
        "UPDATE jobs SET submitted_at = updated_at"
        " WHERE provider_job_id IS NOT NULL AND status IN ('dispatched', 'running')"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE jobs DROP COLUMN IF EXISTS submitted_at")
