"""Notifications (issue #18): the inbox, its once-only keys, the push outbox and
Expo's tickets, preferences, push tokens.

Rows are written by the API and the workers only (a notification is written in the
transaction of what caused it; a token belongs to the last user who registered it,
which only the API can decide): a signed-in client may read its own notifications,
preferences and tokens through Supabase's API and write none; ``anon`` sees nothing.
The outbox, the keys and the tickets are the service's bookkeeping: no client reads
them.

Revision ID: 0300
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0300"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: readable by their owner (column ``user_id``)
OWN_READ = ("notifications", "notification_preferences", "push_tokens")
#: the service's alone
SERVICE_ONLY = ("notification_keys", "notification_deliveries", "push_tickets")
_UID = "(SELECT auth.uid())"
_CATEGORIES = "'generation', 'training', 'social', 'account_and_billing', 'marketing'"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE notifications (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            kind text NOT NULL,
            category text NOT NULL CHECK (category IN ({_CATEGORIES})),
            data jsonb NOT NULL DEFAULT '{{}}',
            in_inbox boolean NOT NULL DEFAULT true,
            count integer NOT NULL DEFAULT 1 CHECK (count >= 1),
            "group" text,
            group_until timestamptz,
            read_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK (("group" IS NULL) = (group_until IS NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX notifications_inbox ON notifications (user_id, updated_at DESC, id DESC)"
        " WHERE in_inbox"
    )
    op.execute(
        "CREATE INDEX notifications_unread ON notifications (user_id)"
        " WHERE in_inbox AND read_at IS NULL"
    )
    op.execute(
        'CREATE INDEX notifications_groups ON notifications (user_id, kind, "group", group_until)'
        ' WHERE "group" IS NOT NULL'
    )
    op.execute(
        """
        CREATE TABLE notification_keys (
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            key text NOT NULL,
            notification_id uuid NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE notification_deliveries (
            id uuid PRIMARY KEY,
            notification_id uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            seq integer NOT NULL CHECK (seq >= 1),
            status text NOT NULL
                CHECK (status IN ('pending', 'sent', 'skipped', 'failed')),
            due_at timestamptz NOT NULL,
            attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            claimed_until timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            detail text,
            UNIQUE (notification_id, seq)
        )
        """
    )
    op.execute(
        "CREATE INDEX notification_deliveries_due ON notification_deliveries (due_at, id)"
        " WHERE status = 'pending'"
    )
    op.execute(
        """
        CREATE TABLE push_tickets (
            id text PRIMARY KEY,
            token text NOT NULL,
            delivery_id uuid NOT NULL REFERENCES notification_deliveries (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX push_tickets_created ON push_tickets (created_at, id)")
    op.execute(
        """
        CREATE TABLE notification_preferences (
            user_id uuid PRIMARY KEY REFERENCES profiles (id) ON DELETE CASCADE,
            channels jsonb NOT NULL DEFAULT '{}',
            quiet_start time,
            quiet_end time,
            time_zone text NOT NULL DEFAULT 'UTC',
            language text NOT NULL DEFAULT 'en',
            updated_at timestamptz NOT NULL DEFAULT now(),
            CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
        )
        """
    )
    op.execute(
        """
        CREATE TABLE push_tokens (
            token text PRIMARY KEY CHECK (token ~ '^(ExponentPushToken|ExpoPushToken)\\[.+\\]$'),
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            platform text NOT NULL CHECK (platform IN ('ios', 'android')),
            device_id text NOT NULL,
            app_version text,
            active boolean NOT NULL DEFAULT true,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX push_tokens_user ON push_tokens (user_id) WHERE active")
    for table in OWN_READ + SERVICE_ONLY:
        # Supabase's default privileges hand new tables to the API roles: take them back
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    for table in OWN_READ:
        op.execute(
            f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated"
            f" USING ({_UID} = user_id)"
        )
        op.execute(f"GRANT SELECT ON {table} TO authenticated")


def downgrade() -> None:
    for table in (
        "push_tickets",
        "notification_deliveries",
        "notification_keys",
        "notifications",
        "notification_preferences",
        "push_tokens",
    ):
        op.execute(f"DROP TABLE IF EXISTS {table}")
