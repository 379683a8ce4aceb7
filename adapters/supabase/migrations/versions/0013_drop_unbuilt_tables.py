"""Drop the tables of features nobody built: ``training_jobs``, ``iap_receipts``,
``push_tokens``, ``likes`` and ``comments`` (0001 made them ahead of their features).

No code reads or writes them (purchases live in ``store_transactions``, 0002), yet
their grants let any signed-in client insert and delete rows of ``likes``,
``comments`` and ``push_tokens`` directly through Supabase's API: a door into the
database that no feature stands behind, and whose rows nothing checks or moderates.
Dropping a table drops its indexes, trigger, policies and grants with it. Rows a
client wrote there are dropped too; the backend never read them. The issues that
build training, push and the social feed add their own tables, shaped by their
features.

Downgrade recreates the five tables as 0001 made them (columns, constraints,
indexes, the ``updated_at`` trigger, RLS, policies and grants), empty.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: children before parents (none references another; comments' policy reads images
#: and videos, which stay)
TABLES = ("comments", "likes", "push_tokens", "iap_receipts", "training_jobs")


def upgrade() -> None:
    for table in TABLES:
        # no CASCADE: should anything have come to depend on one (a view), stop here
        op.execute(f"DROP TABLE IF EXISTS {table}")


# --- downgrade: a frozen copy of what 0001 made ------------------------------------------

# the job statuses as 0001 froze them for training_jobs' CHECK
_JOB_STATUSES = "('queued', 'dispatched', 'running', 'succeeded', 'failed', 'cancelled')"
_UID = "(SELECT auth.uid())"

_SCHEMA = [
    f"""
    CREATE TABLE training_jobs (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
        status text NOT NULL DEFAULT 'queued' CHECK (status IN {_JOB_STATUSES}),
        model_name text NOT NULL,
        trigger_word text,
        steps integer NOT NULL CHECK (steps > 0),
        image_keys text[] NOT NULL DEFAULT '{{}}',
        lora_url text,
        cost integer NOT NULL DEFAULT 0 CHECK (cost >= 0),
        error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz
    )
    """,
    "CREATE INDEX training_jobs_user_created_idx ON training_jobs (user_id, created_at DESC)",
    "CREATE INDEX training_jobs_job_idx ON training_jobs (job_id)",
    """
    CREATE TRIGGER training_jobs_updated_at BEFORE UPDATE ON training_jobs
    FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()
    """,
    """
    CREATE TABLE iap_receipts (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        store text NOT NULL CHECK (store IN ('apple', 'google')),
        product_id text NOT NULL,
        transaction_id text NOT NULL,
        original_transaction_id text,
        payload jsonb NOT NULL DEFAULT '{}'::jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT iap_receipts_store_transaction UNIQUE (store, transaction_id)
    )
    """,
    "CREATE INDEX iap_receipts_user_idx ON iap_receipts (user_id, created_at DESC)",
    "CREATE INDEX iap_receipts_original_idx ON iap_receipts (store, original_transaction_id)",
    """
    CREATE TABLE push_tokens (
        token text PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        platform text NOT NULL CHECK (platform IN ('ios', 'android', 'web')),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX push_tokens_user_idx ON push_tokens (user_id)",
    """
    CREATE TABLE likes (
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        content_id uuid NOT NULL,
        content_type text NOT NULL CHECK (content_type IN ('image', 'video')),
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (user_id, content_id)
    )
    """,
    "CREATE INDEX likes_content_idx ON likes (content_id)",
    """
    CREATE TABLE comments (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        content_id uuid NOT NULL,
        body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 2000),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX comments_content_created_idx ON comments (content_id, created_at)",
    "CREATE INDEX comments_user_idx ON comments (user_id)",
]


def _select_own(table: str) -> str:
    return (
        f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated "
        f"USING ({_UID} = user_id)"
    )


def _own_rows(table: str) -> list[str]:
    return [
        _select_own(table),
        f"CREATE POLICY {table}_insert_own ON {table} FOR INSERT TO authenticated "
        f"WITH CHECK ({_UID} = user_id)",
        f"CREATE POLICY {table}_delete_own ON {table} FOR DELETE TO authenticated "
        f"USING ({_UID} = user_id)",
        f"GRANT SELECT, INSERT, DELETE ON {table} TO authenticated",
    ]


_SECURITY = [
    *(f"REVOKE ALL ON {t} FROM PUBLIC, anon, authenticated" for t in reversed(TABLES)),
    *(f"GRANT ALL ON {t} TO service_role" for t in reversed(TABLES)),
    *(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY" for t in reversed(TABLES)),
    *_own_rows("likes"),
    *_own_rows("push_tokens"),
    *_own_rows("comments"),
    "CREATE POLICY comments_select_public_content ON comments FOR SELECT TO authenticated "
    "USING (EXISTS (SELECT 1 FROM images i WHERE i.id = content_id AND i.is_public) "
    "OR EXISTS (SELECT 1 FROM videos v WHERE v.id = content_id AND v.is_public))",
    *(
        stmt
        for t in ("training_jobs", "iap_receipts")
        for stmt in (_select_own(t), f"GRANT SELECT ON {t} TO authenticated")
    ),
]


def downgrade() -> None:
    for statement in (*_SCHEMA, *_SECURITY):
        op.execute(statement)
