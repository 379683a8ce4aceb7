"""Store transactions, entitlements, allowance grants and notifications, in memory.

The rows live in the unit of work's view (``adapters.memory.store``) (so commit and rollback cover them);
locks are the unit of work's, held until it ends, like Postgres row locks.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.purchases.early_revocations import EarlyRevocation
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
)
from genstudio.core.model.purchases.products import Store


class InMemoryPurchases(_Repo):
    async def lock(self, store: Store, key: str) -> None:
        await self._uow.acquire(("purchase", store.value, key))

    async def get_transaction(self, store: Store, transaction_id: str) -> StoreTransaction | None:
        return self._d.store_transactions.get((store.value, transaction_id))

    async def add_transaction(self, transaction: StoreTransaction) -> None:
        key = (transaction.store.value, transaction.transaction_id)
        if key in self._d.store_transactions:
            raise DuplicateEntry(f"{transaction.store} transaction {transaction.transaction_id}")
        if transaction.user_id not in self._d.profiles:
            raise NotFound(f"no profile {transaction.user_id}")
        self._d.store_transactions[key] = transaction

    async def update_transaction(self, transaction: StoreTransaction) -> None:
        key = (transaction.store.value, transaction.transaction_id)
        if key not in self._d.store_transactions:
            raise NotFound(f"no {transaction.store} transaction {transaction.transaction_id}")
        self._d.store_transactions[key] = transaction

    async def unacknowledged(
        self, store: Store, since: datetime, *, limit: int
    ) -> list[StoreTransaction]:
        found = [
            t
            for t in self._d.store_transactions.values()
            if t.store is store and not t.acknowledged and t.created_at >= since
        ]
        return sorted(found, key=lambda t: t.created_at)[:limit]

    async def get_entitlement(
        self, store: Store, original_transaction_id: str
    ) -> Entitlement | None:
        return self._d.entitlements.get((store.value, original_transaction_id))

    async def save_entitlement(self, entitlement: Entitlement) -> None:
        if entitlement.user_id not in self._d.profiles:
            raise NotFound(f"no profile {entitlement.user_id}")
        key = (entitlement.store.value, entitlement.original_transaction_id)
        self._d.entitlements[key] = entitlement

    async def entitlements_of(self, user_id: UUID) -> list[Entitlement]:
        return [e for e in self._d.entitlements.values() if e.user_id == user_id]

    async def due_entitlements(self, now: datetime, *, limit: int) -> list[Entitlement]:
        found = [
            e
            for e in self._d.entitlements.values()
            if e.entitled and e.next_allowance_at is not None and e.next_allowance_at <= now
        ]
        return sorted(found, key=lambda e: e.next_allowance_at or now)[:limit]

    async def grants(self, store: Store, original_transaction_id: str) -> list[AllowanceGrant]:
        found = [
            g
            for (s, original, _), g in self._d.allowance_grants.items()
            if s == store.value and original == original_transaction_id
        ]
        return sorted(found, key=lambda g: g.month_start)

    async def add_grant(self, grant: AllowanceGrant) -> None:
        key = (grant.store.value, grant.original_transaction_id, grant.month_start)
        if key in self._d.allowance_grants:
            raise DuplicateEntry(f"allowance month {grant.month_start} was granted")
        self._d.allowance_grants[key] = grant

    async def update_grant(self, grant: AllowanceGrant) -> None:
        key = (grant.store.value, grant.original_transaction_id, grant.month_start)
        if key not in self._d.allowance_grants:
            raise NotFound(f"no allowance grant for {grant.month_start}")
        self._d.allowance_grants[key] = grant

    async def early_revocation(self, store: Store, transaction_id: str) -> EarlyRevocation | None:
        for (kept_store, _), revocation in self._d.early_revocations.items():
            if kept_store == store.value and revocation.matches(transaction_id):
                return revocation
        return None

    async def keep_early_revocation(self, revocation: EarlyRevocation) -> None:
        key = (revocation.store.value, revocation.transaction_id)
        kept = self._d.early_revocations.get(key)
        self._d.early_revocations[key] = revocation if kept is None else kept.newer(revocation)

    async def record_notification(
        self, store: Store, notification_id: str, kind: str, received_at: datetime
    ) -> bool:
        key = (store.value, notification_id)
        await self._uow.acquire(("notification", *key))
        if key in self._d.store_notifications:
            return False
        self._d.store_notifications[key] = (kind, received_at)
        return True
