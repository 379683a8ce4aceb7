"""Job reliability: retry times, worker leases, dead letters, wake-up bookkeeping, job events.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATEMENTS = [
    """
    ALTER TABLE jobs
        ADD COLUMN next_attempt_at timestamptz,
        ADD COLUMN lease_owner text,
        ADD COLUMN lease_expires_at timestamptz,
        ADD COLUMN dead_lettered_at timestamptz,
        ADD COLUMN enqueued_at timestamptz,
        ADD COLUMN rerun_of uuid REFERENCES jobs (id) ON DELETE SET NULL
    """,
    # the claim query: due jobs of a kind, and in-flight jobs whose lease ran out
    """
    CREATE INDEX jobs_claim_idx ON jobs (kind, priority DESC, created_at)
        WHERE status = 'queued'
    """,
    """
    CREATE INDEX jobs_in_flight_idx ON jobs (user_id, kind, lease_expires_at)
        WHERE status IN ('dispatched', 'running')
    """,
    "CREATE INDEX jobs_dead_letters_idx ON jobs (dead_lettered_at DESC) "
    "WHERE dead_lettered_at IS NOT NULL",
    "CREATE INDEX jobs_finished_idx ON jobs (kind, updated_at) "
    "WHERE status IN ('succeeded', 'failed')",
    """
    CREATE TABLE job_events (
        id uuid PRIMARY KEY,
        job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        kind text NOT NULL,
        message text NOT NULL,
        created_at timestamptz NOT NULL
    )
    """,
    "CREATE INDEX job_events_job_idx ON job_events (job_id, created_at)",
    "CREATE INDEX job_events_user_idx ON job_events (user_id, created_at DESC)",
    # like the other job tables: the owner reads, only the backend writes
    "REVOKE ALL ON job_events FROM PUBLIC, anon, authenticated",
    "GRANT ALL ON job_events TO service_role",
    "ALTER TABLE job_events ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY job_events_select_own ON job_events FOR SELECT TO authenticated "
    "USING ((SELECT auth.uid()) = user_id)",
    "GRANT SELECT ON job_events TO authenticated",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS job_events")
    op.execute(
        "ALTER TABLE jobs DROP COLUMN IF EXISTS next_attempt_at, "
        "DROP COLUMN IF EXISTS lease_owner, DROP COLUMN IF EXISTS lease_expires_at, "
        "DROP COLUMN IF EXISTS dead_lettered_at, DROP COLUMN IF EXISTS enqueued_at, "
        "DROP COLUMN IF EXISTS rerun_of"
    )
