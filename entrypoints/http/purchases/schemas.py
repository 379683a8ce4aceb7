"""The JSON of purchases, products and subscriptions (camelCase on the wire)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.purchases.products import Product
from genstudio.core.services.purchases.outcomes import PurchaseOutcome
from genstudio.core.services.purchases.subscriptions import SubscriptionView


class ApplePurchaseRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    signed_transaction: str


class GooglePurchaseRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    product_id: str
    purchase_token: str


class AppleNotificationBody(msgspec.Struct, rename="camel"):
    """Apple's body; unknown fields are Apple's business, not an error."""

    signed_payload: str


class ProductItem(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    kind: str
    display_name: str
    credits: int
    period: str | None
    tier: str | None
    apple_product_id: str | None
    google_product_id: str | None

    @classmethod
    def of(cls, p: Product) -> ProductItem:
        return cls(
            id=p.id,
            kind=p.kind.value,
            display_name=p.display_name,
            credits=p.credits,
            period=p.period.value if p.period else None,
            tier=p.tier.value if p.tier else None,
            apple_product_id=p.apple_product_id,
            google_product_id=p.google_product_id,
        )


class ProductList(msgspec.Struct):
    items: list[ProductItem]


class SubscriptionResponse(msgspec.Struct, rename="camel", kw_only=True):
    active: bool
    status: str | None
    plan: str | None
    tier: str
    store: str | None
    period_start: datetime | None
    period_end: datetime | None
    auto_renew: bool | None
    next_allowance_at: datetime | None
    next_allowance_credits: int

    @classmethod
    def of(cls, view: SubscriptionView | None) -> SubscriptionResponse:
        if view is None:
            return cls(
                active=False,
                status=None,
                plan=None,
                tier="free",
                store=None,
                period_start=None,
                period_end=None,
                auto_renew=None,
                next_allowance_at=None,
                next_allowance_credits=0,
            )
        e = view.entitlement
        tier = view.product.tier.value if e.entitled and view.product.tier else "free"
        return cls(
            active=e.entitled,
            status=e.status.value,
            plan=view.product.id,
            tier=tier,
            store=e.store.value,
            period_start=e.period_start,
            period_end=e.period_end,
            auto_renew=e.auto_renew,
            next_allowance_at=view.next_allowance_at,
            next_allowance_credits=view.next_allowance_credits,
        )


class PurchaseResponse(msgspec.Struct, rename="camel", kw_only=True):
    store: str
    transaction_id: str
    product_id: str
    credits_granted: int
    credits_total: int
    replayed: bool
    balance: int
    subscription: SubscriptionResponse | None

    @classmethod
    def of(
        cls, o: PurchaseOutcome, balance: int, view: SubscriptionView | None
    ) -> PurchaseResponse:
        return cls(
            store=o.store.value,
            transaction_id=o.transaction_id,
            product_id=o.product_id,
            credits_granted=o.credits_granted,
            credits_total=o.credits_total,
            replayed=o.replayed,
            balance=balance,
            subscription=SubscriptionResponse.of(view) if o.entitlement is not None else None,
        )


class WebhookResult(msgspec.Struct, kw_only=True):
    store: str
    notification_id: str
    kind: str
    actions: list[str]
    users: list[uuid.UUID] = []
