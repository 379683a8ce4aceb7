"""Trust and safety (issue #17): reports, the moderators' audit log, suspensions and
erased accounts.

``reports``: one open report per reporter and target (a partial unique index, so a
resolved report does not stop a new one). Written by the API only; a signed-in
client reads its own reports (RLS) and writes none; ``anon`` sees nothing.

``moderation_audit_log``: every operator action and every automatic hide, appended
in the transaction that acts; a trigger refuses UPDATE and DELETE, so the log is
append-only for every role, the API's included. No client reads it.

``profiles.suspended_at`` (an operator suspended the account) and
``profiles.erased_at`` (the account was deleted: its personal columns are cleared
and the row stays for the ledger's and the store transactions' sake).

Revision ID: 0210
Revises: 0200
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0210"
down_revision: str | Sequence[str] | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KINDS = "('post', 'comment', 'user')"
_REASONS = (
    "('spam', 'nudity', 'violence', 'harassment', 'hate', 'self_harm', 'illegal',"
    " 'intellectual_property', 'impersonation', 'other')"
)
_ACTIONS = "('remove_content', 'restore', 'suspend_user', 'dismiss')"

_SCHEMA = [
    "ALTER TABLE profiles ADD COLUMN suspended_at timestamptz",
    "ALTER TABLE profiles ADD COLUMN erased_at timestamptz",
    f"""
    CREATE TABLE reports (
        id uuid PRIMARY KEY,
        reporter_id uuid NOT NULL REFERENCES profiles (id),
        target_kind text NOT NULL CHECK (target_kind IN {_KINDS}),
        target_id uuid NOT NULL,
        target_user_id uuid NOT NULL,
        reason text NOT NULL CHECK (reason IN {_REASONS}),
        details text NOT NULL DEFAULT '' CHECK (char_length(details) <= 1000),
        status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
        action text CHECK (action IN {_ACTIONS}),
        resolved_by uuid,
        resolved_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE UNIQUE INDEX reports_one_open ON reports (reporter_id, target_kind, target_id)"
    " WHERE status = 'open'",
    "CREATE INDEX reports_open_target ON reports (target_kind, target_id) WHERE status = 'open'",
    "CREATE INDEX reports_queue ON reports (status, created_at, id)",
    "CREATE INDEX reports_reporter ON reports (reporter_id, created_at DESC)",
    f"""
    CREATE TABLE moderation_audit_log (
        id uuid PRIMARY KEY,
        actor_id uuid,
        action text NOT NULL,
        target_kind text NOT NULL CHECK (target_kind IN {_KINDS}),
        target_id uuid NOT NULL,
        report_id uuid REFERENCES reports (id),
        note text NOT NULL DEFAULT '' CHECK (char_length(note) <= 1000),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX moderation_audit_target ON moderation_audit_log (target_id, created_at DESC)",
    "CREATE INDEX moderation_audit_created ON moderation_audit_log (created_at DESC, id DESC)",
    """
    CREATE FUNCTION genstudio_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = '42501';
    END $$
    """,
    """
    CREATE TRIGGER moderation_audit_append_only BEFORE UPDATE OR DELETE
    ON moderation_audit_log FOR EACH ROW EXECUTE FUNCTION genstudio_append_only()
    """,
]


def upgrade() -> None:
    for statement in _SCHEMA:
        op.execute(statement)
    for table in ("reports", "moderation_audit_log"):
        # Supabase's default privileges hand new tables to the API roles: take them back
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY reports_select_own ON reports FOR SELECT TO authenticated"
        " USING ((SELECT auth.uid()) = reporter_id)"
    )
    op.execute("GRANT SELECT ON reports TO authenticated")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS moderation_audit_log")
    op.execute("DROP FUNCTION IF EXISTS genstudio_append_only()")
    op.execute("DROP TABLE IF EXISTS reports")
    op.execute("ALTER TABLE profiles DROP COLUMN IF EXISTS erased_at")
    op.execute("ALTER TABLE profiles DROP COLUMN IF EXISTS suspended_at")
