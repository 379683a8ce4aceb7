"""Entitlements: what a subscription gives its owner, decided from store news.

An entitlement is one store subscription (one renewal chain, named by the store's
original transaction id) owned by one user forever. Store snapshots move it
between the statuses of ``EntitlementStatus``; the rules here are the only place
that decides:

- stale news (older than the last applied) changes nothing;
- a new period needs a new payment: news naming the payment already applied (the
  same ``transaction_id``) keeps the period's start and its allowance months however
  its end moves (Google moves ``expiryTime`` to the end of a grace period, and on a
  deferral); only the access and the period's end follow it;
- a refunded or revoked period stays refunded or revoked: only a later period (a
  resubscription, a new payment) or an explicit refund reversal brings access back;
- a subscription an upgrade or downgrade replaced stays REPLACED, whatever the store
  still says about it;
- an active subscription whose auto-renewal is off is AUTO_RENEW_OFF (still
  entitled); one whose paid period is over is EXPIRED whatever the snapshot says.

Allowances: a plan grants its monthly credits once per allowance month. A paid
period of ``n`` months (1 for monthly plans, 12 for yearly ones) is cut into
months counted from the period start (month ``k`` starts ``k`` calendar months
after it; the last one ends at the period end). Month ``k`` is granted once its
start has passed while the user is entitled, as a lot expiring at the month's
end; a month already over is never granted late.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.profiles import SubscriptionTier
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import (
    Product,
    ProductCatalog,
    ProductKind,
    Store,
    add_months,
)
from genstudio.core.model.purchases.store_events import (
    ENTITLED,
    EntitlementStatus,
    SubscriptionSnapshot,
)

#: the store's clock may run ahead of ours: a month starting this soon counts as started
CLOCK_SKEW = timedelta(minutes=5)


class TransactionStatus(enum.StrEnum):
    GRANTED = "granted"
    REFUNDED = "refunded"
    REVOKED = "revoked"


class StoreTransaction(msgspec.Struct, frozen=True, kw_only=True):
    """One store transaction, owned by one user forever (unique per store)."""

    store: Store
    transaction_id: str
    user_id: uuid.UUID
    original_transaction_id: str
    product_id: str  # ours
    store_product_id: str
    kind: ProductKind
    credits: int  # a pack's credits granted by it; 0 for a subscription payment
    lot_id: uuid.UUID | None
    status: TransactionStatus
    purchased_at: datetime
    created_at: datetime
    clawed_back: int = 0
    #: the store was told we delivered (Google: acknowledge / consume)
    acknowledged: bool = True
    #: when the latest refund news about it (a refund, a revocation, a reversal)
    #: happened: older news arriving later is stale
    revocation_event_at: datetime | None = None
    #: the store environment it was bought in (Apple: ``Production`` / ``Sandbox``,
    #: migration 0400); None for Google and for rows from before
    environment: str | None = None
    #: the price the store stated for it (``prices``, migration 0510); None where it
    #: stated none, and for rows from before
    price: Price | None = None
    #: of ``price``, what the store's refunds of it gave back so far, in its currency's
    #: micros (migration 0520): all of it for a full refund, the refunded share or
    #: items for a partial one. None where nothing was refunded, no price is known,
    #: and for rows from before (a full refund of those gave back ``price``)
    refunded_micros: int | None = None


class AllowanceGrant(msgspec.Struct, frozen=True, kw_only=True):
    """One allowance month granted: unique on (store, original transaction, month start)."""

    store: Store
    original_transaction_id: str
    month_start: datetime
    month_end: datetime
    user_id: uuid.UUID
    transaction_id: str  # the payment that covered it
    product_id: str
    credits: int
    lot_id: uuid.UUID
    granted_at: datetime
    clawed_back: int = 0


class Entitlement(msgspec.Struct, frozen=True, kw_only=True):
    store: Store
    original_transaction_id: str
    user_id: uuid.UUID
    product_id: str
    status: EntitlementStatus
    auto_renew: bool
    period_start: datetime
    period_end: datetime
    latest_transaction_id: str
    #: the store time of the newest news applied (older news is stale)
    event_at: datetime
    updated_at: datetime
    #: when the next allowance month of the current period starts (None: none left)
    next_allowance_at: datetime | None = None

    @property
    def entitled(self) -> bool:
        return self.status in ENTITLED

    def months(self, product: Product) -> list[tuple[datetime, datetime]]:
        """The allowance months of the current period, in order."""
        count = product.period.months if product.period else 1
        months = []
        for k in range(count):
            start = add_months(self.period_start, k)
            if start >= self.period_end:
                break
            months.append((start, min(add_months(self.period_start, k + 1), self.period_end)))
        return months

    def current_month(self, product: Product, now: datetime) -> tuple[datetime, datetime] | None:
        """The allowance month due now, if the user is entitled to one."""
        if not self.entitled:
            return None
        for start, end in self.months(product):
            if start - CLOCK_SKEW <= now < end:
                return start, end
        return None

    def following_month_start(self, product: Product, now: datetime) -> datetime | None:
        for start, _ in self.months(product):
            if start - CLOCK_SKEW > now:
                return start
        return None


def period_start_of(snapshot: SubscriptionSnapshot, product: Product) -> datetime:
    if snapshot.period_start is not None:
        return snapshot.period_start
    months = product.period.months if product.period else 1
    return add_months(snapshot.period_end, -months)


def derive_status(snapshot: SubscriptionSnapshot, now: datetime) -> EntitlementStatus:
    status = snapshot.status
    paid_up = status in (EntitlementStatus.ACTIVE, EntitlementStatus.TRIAL)
    if paid_up and snapshot.period_end <= now:
        return EntitlementStatus.EXPIRED
    if status is EntitlementStatus.ACTIVE and not snapshot.auto_renew:
        return EntitlementStatus.AUTO_RENEW_OFF
    if status in (EntitlementStatus.AUTO_RENEW_OFF, EntitlementStatus.REFUNDED):
        # never sent by an adapter; read as what the store could have meant
        return EntitlementStatus.ACTIVE if snapshot.period_end > now else EntitlementStatus.EXPIRED
    if status is EntitlementStatus.REPLACED:
        return EntitlementStatus.EXPIRED  # never sent either: only the core replaces
    return status


def new_entitlement(
    snapshot: SubscriptionSnapshot, product: Product, user_id: uuid.UUID, now: datetime
) -> Entitlement:
    return Entitlement(
        store=snapshot.store,
        original_transaction_id=snapshot.original_transaction_id,
        user_id=user_id,
        product_id=product.id,
        status=derive_status(snapshot, now),
        auto_renew=snapshot.auto_renew,
        period_start=period_start_of(snapshot, product),
        period_end=snapshot.period_end,
        latest_transaction_id=snapshot.transaction_id,
        event_at=snapshot.occurred_at,
        updated_at=now,
    )


def apply_snapshot(
    entitlement: Entitlement, snapshot: SubscriptionSnapshot, product: Product, now: datetime
) -> Entitlement | None:
    """The entitlement after the store's news, or None when the news changes nothing."""
    if snapshot.occurred_at < entitlement.event_at:
        return None  # stale: delivered after newer news
    if entitlement.status is EntitlementStatus.REPLACED:
        return None  # the store may read the old one as active for a while: it is over
    paid_before = snapshot.transaction_id == entitlement.latest_transaction_id
    ended = (EntitlementStatus.REFUNDED, EntitlementStatus.REVOKED)
    if entitlement.status in ended and (
        paid_before or snapshot.period_end <= entitlement.period_end
    ):
        return None  # the refunded period stays refunded, however far its end moved
    if paid_before and snapshot.period_end > entitlement.period_start:
        # no new payment: a period start counted back from a moved end (Google's grace
        # period, a deferral) would open a new allowance month nobody paid for
        start = entitlement.period_start
    else:
        start = period_start_of(snapshot, product)
    same_period = start == entitlement.period_start and (
        paid_before or snapshot.period_end == entitlement.period_end
    )
    return msgspec.structs.replace(
        entitlement,
        product_id=product.id,
        status=derive_status(snapshot, now),
        auto_renew=snapshot.auto_renew,
        period_start=start,
        period_end=snapshot.period_end,
        latest_transaction_id=snapshot.transaction_id,
        event_at=snapshot.occurred_at,
        updated_at=now,
        next_allowance_at=entitlement.next_allowance_at if same_period else None,
    )


def end_entitlement(
    entitlement: Entitlement, status: EntitlementStatus, occurred_at: datetime, now: datetime
) -> Entitlement:
    """Refunded, revoked (or, after a reversal, back to what the period says)."""
    return msgspec.structs.replace(
        entitlement,
        status=status,
        event_at=max(entitlement.event_at, occurred_at),
        updated_at=now,
        next_allowance_at=None,
    )


#: how much a plan gives: the headline is the best plan the user is entitled to
_TIER_RANK = {SubscriptionTier.FREE: 0, SubscriptionTier.PRO: 1, SubscriptionTier.PREMIUM: 2}


def plan_tier(entitlement: Entitlement, catalog: ProductCatalog) -> SubscriptionTier:
    """The tier an entitlement gives now: its plan's while it is entitled, else free
    (as for a plan taken off the catalog)."""
    product = catalog.get(entitlement.product_id)
    if not entitlement.entitled or product is None or product.tier is None:
        return SubscriptionTier.FREE
    return product.tier


def headline(entitlements: list[Entitlement], catalog: ProductCatalog) -> Entitlement | None:
    """The one entitlement that speaks for the user, wherever a plan is shown (the
    profile's tier in ``GET /v1/me``, the queue's priority, ``GET /v1/subscription``).

    Among the entitled ones, the highest tier (what the user pays for is what they
    get), then the latest period end; with none entitled, the most recently changed
    one (the latest news: an expiry, a refund). The rest of the key orders every
    entitlement, so the answer never depends on the order they were read in."""
    entitled = [e for e in entitlements if e.entitled]
    if entitled:
        return max(
            entitled,
            key=lambda e: (
                _TIER_RANK[plan_tier(e, catalog)],
                e.period_end,
                e.updated_at,
                e.store.value,
                e.original_transaction_id,
            ),
        )
    if not entitlements:
        return None
    return max(
        entitlements,
        key=lambda e: (e.updated_at, e.period_end, e.store.value, e.original_transaction_id),
    )
