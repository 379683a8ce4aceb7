"""``ports.repositories.PurchaseRepository`` over one SQLAlchemy connection.

Locks are transaction-scoped advisory locks (released by commit or rollback);
inserts that may hit a unique key run in a SAVEPOINT so the domain error leaves
the transaction usable.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import RowMapping, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import SqlConnection
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.purchases.early_revocations import EarlyRevocation
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
)
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    ENTITLED,
    EntitlementStatus,
    RevocationReason,
)

_LOCK = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _tx(row: RowMapping) -> StoreTransaction:
    return StoreTransaction(
        store=Store(row["store"]),
        transaction_id=row["transaction_id"],
        user_id=row["user_id"],
        original_transaction_id=row["original_transaction_id"],
        product_id=row["product_id"],
        store_product_id=row["store_product_id"],
        kind=ProductKind(row["kind"]),
        credits=row["credits"],
        lot_id=row["lot_id"],
        status=TransactionStatus(row["status"]),
        purchased_at=_utc(row["purchased_at"]),
        created_at=_utc(row["created_at"]),
        clawed_back=row["clawed_back"],
        acknowledged=row["acknowledged"],
        revocation_event_at=(
            _utc(row["revocation_event_at"]) if row["revocation_event_at"] else None
        ),
        environment=row["environment"],
        price=(
            None
            if row["price_micros"] is None
            else Price(amount_micros=row["price_micros"], currency=row["currency"])
        ),
        refunded_micros=row["refunded_micros"],
    )


def _tx_values(tx: StoreTransaction) -> dict[str, Any]:
    return {
        "user_id": tx.user_id,
        "original_transaction_id": tx.original_transaction_id,
        "product_id": tx.product_id,
        "store_product_id": tx.store_product_id,
        "kind": tx.kind.value,
        "credits": tx.credits,
        "lot_id": tx.lot_id,
        "status": tx.status.value,
        "purchased_at": tx.purchased_at,
        "created_at": tx.created_at,
        "clawed_back": tx.clawed_back,
        "acknowledged": tx.acknowledged,
        "revocation_event_at": tx.revocation_event_at,
        "environment": tx.environment,
        "price_micros": None if tx.price is None else tx.price.amount_micros,
        "currency": None if tx.price is None else tx.price.currency,
        "refunded_micros": tx.refunded_micros,
    }


def _entitlement(row: RowMapping) -> Entitlement:
    next_at = row["next_allowance_at"]
    return Entitlement(
        store=Store(row["store"]),
        original_transaction_id=row["original_transaction_id"],
        user_id=row["user_id"],
        product_id=row["product_id"],
        status=EntitlementStatus(row["status"]),
        auto_renew=row["auto_renew"],
        period_start=_utc(row["period_start"]),
        period_end=_utc(row["period_end"]),
        latest_transaction_id=row["latest_transaction_id"],
        event_at=_utc(row["event_at"]),
        updated_at=_utc(row["updated_at"]),
        next_allowance_at=None if next_at is None else _utc(next_at),
    )


def _grant(row: RowMapping) -> AllowanceGrant:
    return AllowanceGrant(
        store=Store(row["store"]),
        original_transaction_id=row["original_transaction_id"],
        month_start=_utc(row["month_start"]),
        month_end=_utc(row["month_end"]),
        user_id=row["user_id"],
        transaction_id=row["transaction_id"],
        product_id=row["product_id"],
        credits=row["credits"],
        lot_id=row["lot_id"],
        granted_at=_utc(row["granted_at"]),
        clawed_back=row["clawed_back"],
    )


class SqlPurchases:
    def __init__(self, connection: SqlConnection) -> None:
        self._conn = connection

    async def _insert(self, statement: Any, duplicate: str) -> None:
        try:
            async with self._conn.begin_nested():
                await self._conn.execute(statement)
        except IntegrityError as exc:
            constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None) or ""
            if constraint.endswith("_pkey"):
                raise DuplicateEntry(duplicate) from exc
            if constraint.endswith("_fkey"):
                raise NotFound("a row this one refers to does not exist") from exc
            raise

    async def lock(self, store: Store, key: str) -> None:
        await self._conn.execute(_LOCK, {"key": f"purchase:{store.value}:{key}"})

    async def get_transaction(self, store: Store, transaction_id: str) -> StoreTransaction | None:
        c = t.store_transactions.c
        result = await self._conn.execute(
            select(t.store_transactions).where(
                c.store == store.value, c.transaction_id == transaction_id
            )
        )
        row = result.mappings().one_or_none()
        return None if row is None else _tx(row)

    async def add_transaction(self, transaction: StoreTransaction) -> None:
        await self._insert(
            insert(t.store_transactions).values(
                store=transaction.store.value,
                transaction_id=transaction.transaction_id,
                **_tx_values(transaction),
            ),
            f"{transaction.store} transaction {transaction.transaction_id}",
        )

    async def update_transaction(self, transaction: StoreTransaction) -> None:
        c = t.store_transactions.c
        result = await self._conn.execute(
            update(t.store_transactions)
            .where(
                c.store == transaction.store.value,
                c.transaction_id == transaction.transaction_id,
            )
            .values(**_tx_values(transaction))
            .returning(c.transaction_id)
        )
        if result.scalar_one_or_none() is None:
            raise NotFound(f"no {transaction.store} transaction {transaction.transaction_id}")

    async def unacknowledged(
        self, store: Store, since: datetime, *, limit: int
    ) -> list[StoreTransaction]:
        c = t.store_transactions.c
        result = await self._conn.execute(
            select(t.store_transactions)
            .where(c.store == store.value, c.acknowledged.is_(False), c.created_at >= since)
            .order_by(c.created_at)
            .limit(limit)
        )
        return [_tx(row) for row in result.mappings()]

    async def get_entitlement(
        self, store: Store, original_transaction_id: str
    ) -> Entitlement | None:
        c = t.entitlements.c
        result = await self._conn.execute(
            select(t.entitlements).where(
                c.store == store.value, c.original_transaction_id == original_transaction_id
            )
        )
        row = result.mappings().one_or_none()
        return None if row is None else _entitlement(row)

    async def save_entitlement(self, entitlement: Entitlement) -> None:
        values = {
            "user_id": entitlement.user_id,
            "product_id": entitlement.product_id,
            "status": entitlement.status.value,
            "auto_renew": entitlement.auto_renew,
            "period_start": entitlement.period_start,
            "period_end": entitlement.period_end,
            "latest_transaction_id": entitlement.latest_transaction_id,
            "event_at": entitlement.event_at,
            "updated_at": entitlement.updated_at,
            "next_allowance_at": entitlement.next_allowance_at,
        }
        statement = insert(t.entitlements).values(
            store=entitlement.store.value,
            original_transaction_id=entitlement.original_transaction_id,
            **values,
        )
        # the owner never changes: an upsert keeps the first user_id
        values.pop("user_id")
        await self._insert(
            statement.on_conflict_do_update(
                index_elements=["store", "original_transaction_id"], set_=values
            ),
            "entitlement",
        )

    async def entitlements_of(self, user_id: uuid.UUID) -> list[Entitlement]:
        c = t.entitlements.c
        result = await self._conn.execute(
            select(t.entitlements)
            .where(c.user_id == user_id)
            .order_by(c.store, c.original_transaction_id)
        )
        return [_entitlement(row) for row in result.mappings()]

    async def due_entitlements(self, now: datetime, *, limit: int) -> list[Entitlement]:
        c = t.entitlements.c
        result = await self._conn.execute(
            select(t.entitlements)
            .where(
                c.next_allowance_at <= now,
                c.status.in_([s.value for s in ENTITLED]),
            )
            .order_by(c.next_allowance_at)
            .limit(limit)
        )
        return [_entitlement(row) for row in result.mappings()]

    async def grants(self, store: Store, original_transaction_id: str) -> list[AllowanceGrant]:
        c = t.allowance_grants.c
        result = await self._conn.execute(
            select(t.allowance_grants)
            .where(c.store == store.value, c.original_transaction_id == original_transaction_id)
            .order_by(c.month_start)
        )
        return [_grant(row) for row in result.mappings()]

    async def add_grant(self, grant: AllowanceGrant) -> None:
        await self._insert(
            insert(t.allowance_grants).values(
                store=grant.store.value,
                original_transaction_id=grant.original_transaction_id,
                month_start=grant.month_start,
                month_end=grant.month_end,
                user_id=grant.user_id,
                transaction_id=grant.transaction_id,
                product_id=grant.product_id,
                credits=grant.credits,
                lot_id=grant.lot_id,
                granted_at=grant.granted_at,
                clawed_back=grant.clawed_back,
            ),
            f"allowance month {grant.month_start} was granted",
        )

    async def update_grant(self, grant: AllowanceGrant) -> None:
        c = t.allowance_grants.c
        result = await self._conn.execute(
            update(t.allowance_grants)
            .where(
                c.store == grant.store.value,
                c.original_transaction_id == grant.original_transaction_id,
                c.month_start == grant.month_start,
            )
            .values(lot_id=grant.lot_id, clawed_back=grant.clawed_back)
            .returning(c.month_start)
        )
        if result.scalar_one_or_none() is None:
            raise NotFound(f"no allowance grant for {grant.month_start}")

    async def early_revocation(self, store: Store, transaction_id: str) -> EarlyRevocation | None:
        c = t.early_revocations.c
        result = await self._conn.execute(
            select(t.early_revocations)
            .where(
                c.store == store.value,
                or_(
                    c.transaction_id == transaction_id,
                    c.original_transaction_id == transaction_id,
                ),
            )
            .order_by(c.occurred_at.desc())
            .limit(1)
        )
        row = result.mappings().first()
        if row is None:
            return None
        return EarlyRevocation(
            store=Store(row["store"]),
            transaction_id=row["transaction_id"],
            original_transaction_id=row["original_transaction_id"],
            reason=RevocationReason(row["reason"]),
            occurred_at=_utc(row["occurred_at"]),
            recorded_at=_utc(row["recorded_at"]),
            reversed=row["reversed"],
        )

    async def keep_early_revocation(self, revocation: EarlyRevocation) -> None:
        c = t.early_revocations.c
        values = {
            "store": revocation.store.value,
            "transaction_id": revocation.transaction_id,
            "original_transaction_id": revocation.original_transaction_id,
            "reason": revocation.reason.value,
            "reversed": revocation.reversed,
            "occurred_at": revocation.occurred_at,
            "recorded_at": revocation.recorded_at,
        }
        statement = insert(t.early_revocations).values(**values)
        # the later news wins, whichever order the store delivered them in
        await self._conn.execute(
            statement.on_conflict_do_update(
                index_elements=["store", "transaction_id"],
                set_={
                    k: statement.excluded[k] for k in values if k not in ("store", "transaction_id")
                },
                where=c.occurred_at <= statement.excluded.occurred_at,
            )
        )

    async def record_notification(
        self, store: Store, notification_id: str, kind: str, received_at: datetime
    ) -> bool:
        # ON CONFLICT waits for a concurrent inserter of the same id, then skips
        result = await self._conn.execute(
            insert(t.store_notifications)
            .values(
                store=store.value,
                notification_id=notification_id,
                kind=kind,
                received_at=received_at,
            )
            .on_conflict_do_nothing(index_elements=["store", "notification_id"])
            .returning(t.store_notifications.c.notification_id)
        )
        return result.scalar_one_or_none() is not None
