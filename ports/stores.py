"""The app stores, as the core needs them: verified purchases and notifications in,
normalized into ``core.store_events``; delivery acknowledgements out.

Errors: InvalidPurchase (the signed data or the store's answer proves nothing for
this app and user: a 4xx, never retried), StoreUnavailable (the store did not
answer usefully: retry later), Unauthorized (a webhook whose sender is not the store).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from genstudio.core.model.purchases.entitlements import StoreTransaction
from genstudio.core.model.purchases.products import ProductKind, Store
from genstudio.core.model.purchases.store_events import Purchase, StoreEvent, SubscriptionSnapshot


class StoreNotification(msgspec.Struct, frozen=True, kw_only=True):
    """One verified notification: its id (for deduplication) and what it says."""

    store: Store
    notification_id: str
    kind: str
    events: list[StoreEvent]


class AppleStore(Protocol):
    async def verify_purchase(self, signed_transaction: str) -> Purchase | SubscriptionSnapshot:
        """Verify a StoreKit 2 signed transaction (JWS: x5c chain to the configured
        roots, bundle id, environment). For a subscription, re-read its status from
        the App Store Server API where it answers. Raises InvalidPurchase."""
        ...

    async def verify_notification(self, signed_payload: str) -> StoreNotification:
        """Verify an App Store Server Notification V2. Raises InvalidPurchase."""
        ...


class GoogleStore(Protocol):
    async def verify_purchase(
        self, store_product_id: str, purchase_token: str, kind: ProductKind
    ) -> Purchase | SubscriptionSnapshot:
        """Read the purchase from the Play Developer API (``purchases.products`` or
        ``purchases.subscriptionsv2``). Raises InvalidPurchase (unknown token, not
        purchased, another package), StoreUnavailable."""
        ...

    async def acknowledge(self, transaction: StoreTransaction) -> None:
        """Tell Google the purchase was delivered: consume a pack, acknowledge a
        subscription. Idempotent. Raises StoreUnavailable."""
        ...

    async def verify_push(self, authorization: str | None) -> None:
        """Check a Pub/Sub push's OIDC bearer token (signature, audience, service
        account). Raises Unauthorized."""
        ...

    async def read_notification(self, body: bytes) -> StoreNotification:
        """Decode a Real-time developer notification from a Pub/Sub push body and
        re-read the purchase's state from the Play Developer API. Raises
        InvalidPurchase (not ours, malformed), StoreUnavailable."""
        ...
