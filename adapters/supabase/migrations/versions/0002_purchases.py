"""In-app purchases: store transactions, entitlements, allowance grants, notifications.

- ``store_transactions``: one row per store transaction, unique per store, owned by
  one user forever; a pack's lot, refund state, and whether the store was told we
  delivered (Google's acknowledge / consume).
- ``entitlements``: one row per store subscription (its original transaction id):
  status, plan, period, auto-renewal, and when the next allowance month starts.
- ``allowance_grants``: one row per allowance month granted; the primary key is what
  makes a month grant once.
- ``store_notifications``: the App Store notificationUUIDs and Pub/Sub messageIds
  already applied, so a redelivery changes nothing.
- the ledger learns the ``clawback`` entry kind.

Clients read their own transactions, entitlements and grants; nothing here is
writable by them, and notifications are the backend's alone.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# frozen copies, as in 0001
ENTRY_KINDS_BEFORE = (
    "grant",
    "purchase",
    "allowance",
    "hold",
    "settle",
    "release",
    "refund",
    "expiry",
    "adjustment",
)
ENTRY_KINDS = (*ENTRY_KINDS_BEFORE, "clawback")
STORES = ("apple", "google")
PRODUCT_KINDS = ("consumable", "subscription")
TRANSACTION_STATUSES = ("granted", "refunded", "revoked")
ENTITLEMENT_STATUSES = (
    "active",
    "trial",
    "auto_renew_off",
    "grace_period",
    "billing_retry",
    "on_hold",
    "paused",
    "expired",
    "revoked",
    "refunded",
)

TABLES = ("store_transactions", "entitlements", "allowance_grants", "store_notifications")


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


SCHEMA = [
    f"""
    CREATE TABLE store_transactions (
        store text NOT NULL CHECK (store IN {_in(STORES)}),
        transaction_id text NOT NULL,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        original_transaction_id text NOT NULL,
        product_id text NOT NULL,
        store_product_id text NOT NULL,
        kind text NOT NULL CHECK (kind IN {_in(PRODUCT_KINDS)}),
        credits integer NOT NULL CHECK (credits >= 0),
        lot_id uuid REFERENCES credit_lots (id),
        status text NOT NULL CHECK (status IN {_in(TRANSACTION_STATUSES)}),
        clawed_back integer NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
        acknowledged boolean NOT NULL DEFAULT true,
        purchased_at timestamptz NOT NULL,
        created_at timestamptz NOT NULL,
        -- a store transaction belongs to the first account that presented it, forever
        PRIMARY KEY (store, transaction_id)
    )
    """,
    "CREATE INDEX store_transactions_user_idx ON store_transactions (user_id, created_at DESC)",
    """
    CREATE INDEX store_transactions_original_idx
        ON store_transactions (store, original_transaction_id)
    """,
    # the acknowledgement retry scans only what is still pending
    """
    CREATE INDEX store_transactions_unacknowledged_idx
        ON store_transactions (store, created_at) WHERE NOT acknowledged
    """,
    f"""
    CREATE TABLE entitlements (
        store text NOT NULL CHECK (store IN {_in(STORES)}),
        original_transaction_id text NOT NULL,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        product_id text NOT NULL,
        status text NOT NULL CHECK (status IN {_in(ENTITLEMENT_STATUSES)}),
        auto_renew boolean NOT NULL,
        period_start timestamptz NOT NULL,
        period_end timestamptz NOT NULL,
        latest_transaction_id text NOT NULL,
        event_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL,
        next_allowance_at timestamptz,
        PRIMARY KEY (store, original_transaction_id),
        CONSTRAINT entitlements_period CHECK (period_start < period_end)
    )
    """,
    "CREATE INDEX entitlements_user_idx ON entitlements (user_id)",
    # the allowance scheduler's scan
    """
    CREATE INDEX entitlements_next_allowance_idx ON entitlements (next_allowance_at)
        WHERE next_allowance_at IS NOT NULL
    """,
    f"""
    CREATE TABLE allowance_grants (
        store text NOT NULL CHECK (store IN {_in(STORES)}),
        original_transaction_id text NOT NULL,
        month_start timestamptz NOT NULL,
        month_end timestamptz NOT NULL,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        transaction_id text NOT NULL,
        product_id text NOT NULL,
        credits integer NOT NULL CHECK (credits > 0),
        lot_id uuid NOT NULL REFERENCES credit_lots (id),
        granted_at timestamptz NOT NULL,
        clawed_back integer NOT NULL DEFAULT 0 CHECK (clawed_back >= 0),
        -- an allowance month is granted once
        PRIMARY KEY (store, original_transaction_id, month_start),
        FOREIGN KEY (store, original_transaction_id)
            REFERENCES entitlements (store, original_transaction_id) ON DELETE CASCADE
            DEFERRABLE INITIALLY DEFERRED
    )
    """,
    "CREATE INDEX allowance_grants_user_idx ON allowance_grants (user_id)",
    f"""
    CREATE TABLE store_notifications (
        store text NOT NULL CHECK (store IN {_in(STORES)}),
        notification_id text NOT NULL,
        kind text NOT NULL,
        received_at timestamptz NOT NULL,
        PRIMARY KEY (store, notification_id)
    )
    """,
    "CREATE INDEX store_notifications_received_idx ON store_notifications (received_at)",
    "ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_kind_check",
    f"ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_kind_check "
    f"CHECK (kind IN {_in(ENTRY_KINDS)})",
]

_UID = "(SELECT auth.uid())"

SECURITY = [
    *(f"REVOKE ALL ON {t} FROM PUBLIC, anon, authenticated" for t in TABLES),
    *(f"GRANT ALL ON {t} TO service_role" for t in TABLES),
    *(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY" for t in TABLES),
    *(
        stmt
        for t in ("store_transactions", "entitlements", "allowance_grants")
        for stmt in (
            f"CREATE POLICY {t}_select_own ON {t} FOR SELECT TO authenticated "
            f"USING ({_UID} = user_id)",
            f"GRANT SELECT ON {t} TO authenticated",
        )
    ),
]


def upgrade() -> None:
    for statement in (*SCHEMA, *SECURITY):
        op.execute(statement)


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute("ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_kind_check")
    op.execute(
        f"ALTER TABLE credit_ledger ADD CONSTRAINT credit_ledger_kind_check "
        # NOT VALID: clawback entries already written stay (the ledger is history)
        f"CHECK (kind IN {_in(ENTRY_KINDS_BEFORE)}) NOT VALID"
    )
