"""The price each store transaction was sold for, where the store states one (issue
#20: revenue and refunds per store in ``GET /v1/admin/stats``).

- ``store_transactions.price_micros``: the amount in micro-units of the currency
  (1 unit = 1 000 000; Apple's milliunits times 1 000, Google's ``Money`` units and
  nanos), never negative;
- ``store_transactions.currency``: its ISO 4217 code.

Both or neither: null where the store stated no price (Google's one-time products, a
payment known only from refund news, Apple's family-shared access) and for every row
from before. Nothing is backfilled: the stores' signed data was not kept. The table's
privileges and RLS (0002: the service role writes, a user reads their own rows) cover
the new columns.

Revision ID: 0510
Revises: 0500
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0510"
down_revision: str | Sequence[str] | None = "0500"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE store_transactions"
        " ADD COLUMN price_micros bigint CHECK (price_micros >= 0),"
        " ADD COLUMN currency text CHECK (currency ~ '^[A-Z]{3}$'),"
        " ADD CONSTRAINT store_transactions_price_check"
        " CHECK ((price_micros IS NULL) = (currency IS NULL))"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE store_transactions"
        " DROP CONSTRAINT IF EXISTS store_transactions_price_check,"
        " DROP COLUMN IF EXISTS currency,"
        " DROP COLUMN IF EXISTS price_micros"
    )
