"""entitlements.status 'replaced': a subscription an upgrade or downgrade replaced
(Google's ``linkedPurchaseToken``) is over for good, whatever the store still says
about the old purchase. Before, it was marked 'expired', and later news about the old
token brought it back to life, earning allowance months beside its replacement.

Entitlements already ended by a replacement stay 'expired' (which replacement ended
them was not recorded); only replacements from now on are marked.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES_BEFORE = (
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
STATUSES = (*STATUSES_BEFORE, "replaced")


def _check(statuses: Sequence[str]) -> str:
    values = ", ".join(f"'{s}'" for s in statuses)
    return (
        "ALTER TABLE entitlements ADD CONSTRAINT entitlements_status_check"
        f" CHECK (status IN ({values}))"
    )


def upgrade() -> None:
    op.execute("ALTER TABLE entitlements DROP CONSTRAINT entitlements_status_check")
    op.execute(_check(STATUSES))


def downgrade() -> None:
    # the code before this revision knows no 'replaced': it read such a one as expired
    op.execute("UPDATE entitlements SET status = 'expired' WHERE status = 'replaced'")
    op.execute("ALTER TABLE entitlements DROP CONSTRAINT entitlements_status_check")
    op.execute(_check(STATUSES_BEFORE))
