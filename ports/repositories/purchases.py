"""Store transactions, entitlements, allowance grants and store notifications."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from genstudio.core.model.purchases.early_revocations import EarlyRevocation
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
)
from genstudio.core.model.purchases.products import Store


class PurchaseRepository(Protocol):
    """Store transactions, entitlements, allowance grants and seen store notifications."""

    async def lock(self, store: Store, key: str) -> None:
        """Serialize on one purchase (a transaction or subscription id) until the unit
        of work ends. Take it before ``ledger.lock_account``."""
        ...

    async def get_transaction(
        self, store: Store, transaction_id: str
    ) -> StoreTransaction | None: ...

    async def add_transaction(self, transaction: StoreTransaction) -> None:
        """Raises DuplicateEntry if the store already has that transaction id."""
        ...

    async def update_transaction(self, transaction: StoreTransaction) -> None: ...

    async def unacknowledged(
        self, store: Store, since: datetime, *, limit: int
    ) -> list[StoreTransaction]:
        """Transactions the store was not yet told about, created at or after ``since``."""
        ...

    async def get_entitlement(
        self, store: Store, original_transaction_id: str
    ) -> Entitlement | None: ...

    async def save_entitlement(self, entitlement: Entitlement) -> None:
        """Insert or replace the entitlement of (store, original transaction id)."""
        ...

    async def entitlements_of(self, user_id: uuid.UUID) -> list[Entitlement]: ...

    async def due_entitlements(self, now: datetime, *, limit: int) -> list[Entitlement]:
        """Entitled ones whose next allowance month has started (``next_allowance_at <= now``)."""
        ...

    async def grants(self, store: Store, original_transaction_id: str) -> list[AllowanceGrant]:
        """The subscription's allowance grants, oldest month first."""
        ...

    async def add_grant(self, grant: AllowanceGrant) -> None:
        """Raises DuplicateEntry if that month was granted already."""
        ...

    async def update_grant(self, grant: AllowanceGrant) -> None: ...

    async def early_revocation(self, store: Store, transaction_id: str) -> EarlyRevocation | None:
        """The refund news kept about a transaction before anyone claimed it: the one
        whose ``transaction_id`` or ``original_transaction_id`` is ``transaction_id``
        (``EarlyRevocation.matches``); None if there is none."""
        ...

    async def keep_early_revocation(self, revocation: EarlyRevocation) -> None:
        """Keep refund news about an unclaimed transaction: insert it, or replace the
        kept one of the same (store, transaction id) when it happened later."""
        ...

    async def record_notification(
        self, store: Store, notification_id: str, kind: str, received_at: datetime
    ) -> bool:
        """Remember a store notification; False if it was seen before (a redelivery).

        A concurrent delivery of the same id waits for the first unit of work to end.
        """
        ...
