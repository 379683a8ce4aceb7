"""What applying a purchase or a store event did."""

from __future__ import annotations

import uuid

import msgspec

from genstudio.core.model.purchases.entitlements import (
    Entitlement,
)
from genstudio.core.model.purchases.products import Store


class PurchaseOutcome(msgspec.Struct, frozen=True, kw_only=True):
    store: Store
    transaction_id: str
    product_id: str
    #: credits this call granted (0 on a replay)
    credits_granted: int
    #: credits the purchase granted in all (a pack's credits; allowances so far)
    credits_total: int
    replayed: bool
    entitlement: Entitlement | None = None


class EventOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one store event did; ``action`` is for logs and webhook answers."""

    action: str
    user_id: uuid.UUID | None = None
    credits: int = 0
