"""What the store's refunds gave back of a transaction's price (partial refunds in
``GET /v1/admin/stats``'s ``refundedMicros``).

- ``store_transactions.refunded_micros``: of ``price_micros``, in the same currency,
  what refunds gave back so far: all of it for a full refund, the refunded share
  (Apple's ``revocationPercentage``) or items (Google's ``voidedQuantity``) of it for a
  partial one. Null where nothing was refunded, where no price is known, and for
  every row from before (the figures take ``price_micros`` for those refunded in full,
  as before; a partial refund from before stays uncounted: its share was not kept).

Expand only: one nullable column, never above the price; nothing backfilled. The
table's privileges and RLS (0002) cover it.

Revision ID: 0520
Revises: 0510
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0520"
down_revision: str | Sequence[str] | None = "0510"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE store_transactions"
        " ADD COLUMN refunded_micros bigint,"
        " ADD CONSTRAINT store_transactions_refunded_check"
        " CHECK (refunded_micros IS NULL"
        " OR (price_micros IS NOT NULL AND refunded_micros BETWEEN 0 AND price_micros))"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE store_transactions"
        " DROP CONSTRAINT IF EXISTS store_transactions_refunded_check,"
        " DROP COLUMN IF EXISTS refunded_micros"
    )
