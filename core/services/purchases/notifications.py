"""Store notifications: normalised store events applied to entitlements and credits."""

from __future__ import annotations

from datetime import datetime

from genstudio.core.model.errors import InvalidPurchase, PurchaseOwnedElsewhere
from genstudio.core.model.purchases.products import ProductCatalog, ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    Informational,
    Purchase,
    Revocation,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.notifications.emit import Kick
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.outcomes import EventOutcome
from genstudio.core.services.purchases.refunds import reverse_refund, revoke
from genstudio.core.services.purchases.subscriptions import _apply_subscription
from genstudio.core.services.realtime import credits_changed
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

# --- store notifications ------------------------------------------------------------


async def handle_notification(
    uow_factory: UnitOfWorkFactory,
    *,
    store: Store,
    notification_id: str,
    kind: str,
    events: list[StoreEvent],
    catalog: ProductCatalog,
    now: datetime,
    kick: Kick | None = None,
    analytics: Tracker | None = None,
    realtime: RealtimePublisher | None = None,
) -> list[EventOutcome]:
    """Apply one verified store notification once, committed before returning.

    A redelivery (same notification id) changes nothing and returns ``duplicate``.
    ``kick``: the push delivery, started after the commit when the news concerned a
    user (what it told them is in the outbox either way). ``analytics``: purchases,
    subscription changes and clawbacks are tracked after the commit (issue #20).
    ``realtime``: every balance the news moved (a purchase, an allowance, a refund's
    claw-back, a reversal) is announced after the commit (``credits.changed``).
    """
    async with uow_factory() as uow:
        if not await uow.purchases.record_notification(store, notification_id, kind, now):
            return [EventOutcome(action="duplicate")]
        outcomes = [
            await apply_store_event(uow, event, catalog=catalog, now=now, analytics=analytics)
            for event in events
        ]
        if kick is not None and any(o.user_id is not None for o in outcomes):
            uow.after_commit(kick)
        credits_changed(uow, realtime)  # each moved balance, to its user's open app
        await uow.commit()
    return outcomes


async def apply_store_event(
    uow: UnitOfWork,
    event: StoreEvent,
    *,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
) -> EventOutcome:
    """What the store's news does to entitlements and credits."""
    if isinstance(event, Informational):
        return EventOutcome(action=f"ignored:{event.kind}")
    if isinstance(event, Purchase):
        if event.user_id is None:
            return EventOutcome(action="unattributed")
        if catalog.for_store(event.store, event.store_product_id) is None:
            # another of the app's products (not credits): recorded, so the store stops
            # delivering it, as for a subscription we do not sell
            return EventOutcome(action="unknown_product", user_id=event.user_id)
        try:
            outcome = await claim_purchase(
                uow, event, user_id=event.user_id, catalog=catalog, now=now, analytics=analytics
            )
        except PurchaseOwnedElsewhere:
            return EventOutcome(action="owned_elsewhere", user_id=event.user_id)
        except InvalidPurchase as exc:  # not one we can grant, however often it comes
            return EventOutcome(action=f"refused:{exc}", user_id=event.user_id)
        return EventOutcome(
            action="replayed" if outcome.replayed else "granted",
            user_id=event.user_id,
            credits=outcome.credits_granted,
        )
    if isinstance(event, SubscriptionSnapshot):
        return await _apply_snapshot_event(uow, event, catalog, now, analytics)
    if isinstance(event, Revocation):
        return await revoke(uow, event, catalog, now, analytics)
    return await reverse_refund(uow, event, catalog, now)


async def _apply_snapshot_event(
    uow: UnitOfWork,
    event: SubscriptionSnapshot,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
) -> EventOutcome:
    product = catalog.for_store(event.store, event.store_product_id)
    if product is None or product.kind is not ProductKind.SUBSCRIPTION:
        return EventOutcome(action="unknown_product")
    await uow.purchases.lock(event.store, event.original_transaction_id)
    current = await uow.purchases.get_entitlement(event.store, event.original_transaction_id)
    # ownership is the first account's forever, whatever a later token says
    owner = current.user_id if current is not None else event.user_id
    if owner is None:
        return EventOutcome(action="unattributed")
    await uow.profiles.ensure(owner, None)
    await uow.ledger.lock_account(owner)
    existing = await uow.purchases.get_transaction(event.store, event.transaction_id)
    if existing is not None and existing.user_id != owner:
        return EventOutcome(action="owned_elsewhere", user_id=owner)
    entitlement, granted = await _apply_subscription(
        uow, event, product, owner, catalog, now, analytics
    )
    return EventOutcome(action=entitlement.status.value, user_id=owner, credits=granted)
