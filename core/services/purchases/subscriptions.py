"""Subscriptions: entitlements, monthly allowances and the profile's tier."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.analytics import subscription_changed
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import PurchaseOwnedElsewhere
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
    apply_snapshot,
    end_entitlement,
    headline,
    new_entitlement,
    plan_tier,
)
from genstudio.core.model.purchases.products import Product, ProductCatalog, ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    SubscriptionSnapshot,
)
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import (
    add_credits,
)
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY, Kick
from genstudio.core.services.realtime import credits_changed
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

#: what a refunded or revoked payment makes of the period it paid for
_ENDED_BY = {
    TransactionStatus.REFUNDED: EntitlementStatus.REFUNDED,
    TransactionStatus.REVOKED: EntitlementStatus.REVOKED,
}


class SubscriptionView(msgspec.Struct, frozen=True, kw_only=True):
    entitlement: Entitlement
    product: Product
    next_allowance_at: datetime | None
    next_allowance_credits: int


def _paid_by_store(store: Store) -> bool:
    # Apple: the app finishes the transaction; Google: we must acknowledge it
    return store is Store.APPLE


async def _apply_subscription(
    uow: UnitOfWork,
    event: SubscriptionSnapshot,
    product: Product,
    user_id: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
) -> tuple[Entitlement, int]:
    """Apply the store's view; grant the allowance month due. Locks must be held.
    ``analytics``: the change (started, renewed, cancelled, expired) is tracked after
    the commit (issue #20)."""
    current = await uow.purchases.get_entitlement(event.store, event.original_transaction_id)
    if current is None:
        entitlement = new_entitlement(event, product, user_id, now)
    elif current.user_id != user_id:
        raise PurchaseOwnedElsewhere("this subscription belongs to another account")
    else:
        entitlement = apply_snapshot(current, event, product, now) or current
    payment = await uow.purchases.get_transaction(event.store, event.transaction_id)
    if payment is not None and entitlement.latest_transaction_id == payment.transaction_id:
        entitlement = await _refunded_before_news(uow, entitlement, payment, event, product, now)
    if payment is None:
        await uow.purchases.add_transaction(
            StoreTransaction(
                store=event.store,
                transaction_id=event.transaction_id,
                user_id=user_id,
                original_transaction_id=event.original_transaction_id,
                product_id=product.id,
                store_product_id=event.store_product_id,
                kind=ProductKind.SUBSCRIPTION,
                credits=0,
                lot_id=None,
                status=TransactionStatus.GRANTED,
                purchased_at=entitlement.period_start,
                created_at=now,
                acknowledged=_paid_by_store(event.store),
                environment=event.environment,
                price=event.price,
            )
        )
    entitlement, granted = await _grant_due_month(uow, entitlement, catalog, now)
    await uow.purchases.save_entitlement(entitlement)
    # renewed, in grace, expiring, expired: told in the news' transaction (issue #18)
    told = events.subscription_changed(current, entitlement)
    if told is not None:
        await ROWS_ONLY.tell(uow, told, now)
    track(uow, analytics, subscription_changed(current, entitlement, now))
    if event.replaces and event.replaces != event.original_transaction_id:
        await _end_replaced(uow, event, user_id, now)
    await sync_profile(uow, user_id, catalog)
    return entitlement, granted


async def _refunded_before_news(
    uow: UnitOfWork,
    entitlement: Entitlement,
    payment: StoreTransaction,
    event: SubscriptionSnapshot,
    product: Product,
    now: datetime,
) -> Entitlement:
    """The entitlement once the payment behind its current period is known: the store
    retries its news for days, so a refund of a renewal can come before the renewal
    (``_revoke`` then recorded the payment, refunded): the period it paid for is over
    before it began, and earns no allowance."""
    if payment.revocation_event_at is not None and (
        payment.purchased_at != entitlement.period_start
        or payment.product_id != product.id
        or (payment.price is None and event.price is not None)
    ):
        # recorded by refund news, which does not say what the payment bought, nor
        # what it cost
        await uow.purchases.update_transaction(
            msgspec.structs.replace(
                payment,
                product_id=product.id,
                store_product_id=event.store_product_id,
                purchased_at=entitlement.period_start,
                price=payment.price or event.price,
            )
        )
    if payment.status is TransactionStatus.GRANTED or not entitlement.entitled:
        return entitlement
    return end_entitlement(
        entitlement,
        _ENDED_BY[payment.status],
        payment.revocation_event_at or event.occurred_at,
        now,
    )


async def _end_replaced(
    uow: UnitOfWork, event: SubscriptionSnapshot, user_id: uuid.UUID, now: datetime
) -> None:
    """An upgrade or downgrade replaced the user's old subscription: the store reads
    both as active for a while, but only the new one pays from now on; the old one
    is REPLACED for good (later news about it changes nothing) and earns no more
    allowance months. What it already granted stays granted: it was paid for."""
    assert event.replaces is not None
    await uow.purchases.lock(event.store, event.replaces)
    old = await uow.purchases.get_entitlement(event.store, event.replaces)
    if old is None or old.user_id != user_id or old.status is EntitlementStatus.REPLACED:
        return
    await uow.purchases.save_entitlement(
        end_entitlement(old, EntitlementStatus.REPLACED, event.occurred_at, now)
    )


async def _grant_due_month(
    uow: UnitOfWork, entitlement: Entitlement, catalog: ProductCatalog, now: datetime
) -> tuple[Entitlement, int]:
    """Grant the allowance month that has started, once; schedule the next one."""
    product = catalog.get(entitlement.product_id)
    if product is None:  # a plan taken off the catalog keeps its entitlement, not its credits
        return msgspec.structs.replace(entitlement, next_allowance_at=None), 0
    granted = 0
    month = entitlement.current_month(product, now)
    if month is not None:
        start, end = month
        store, original = entitlement.store, entitlement.original_transaction_id
        grants = await uow.purchases.grants(store, original)
        if not any(g.month_start == start for g in grants):
            entry = await add_credits(
                uow,
                user_id=entitlement.user_id,
                amount=product.credits,
                kind=EntryKind.ALLOWANCE,
                reference=f"{store}:{original} {product.id} {start.date().isoformat()}",
                idempotency_key=f"allowance:{store}:{original}:{start.isoformat()}",
                now=now,
                expires_at=end,
            )
            assert entry.lot_id is not None
            # told in the grant's transaction (issue #18)
            told = events.credits_granted(
                entitlement.user_id, product.credits, "allowance", entry.id, product.id
            )
            await ROWS_ONLY.tell(uow, told, now)
            await uow.purchases.add_grant(
                AllowanceGrant(
                    store=store,
                    original_transaction_id=original,
                    month_start=start,
                    month_end=end,
                    user_id=entitlement.user_id,
                    transaction_id=entitlement.latest_transaction_id,
                    product_id=product.id,
                    credits=product.credits,
                    lot_id=entry.lot_id,
                    granted_at=now,
                )
            )
            granted = product.credits
    following = entitlement.following_month_start(product, now) if entitlement.entitled else None
    return msgspec.structs.replace(entitlement, next_allowance_at=following), granted


async def sync_profile(uow: UnitOfWork, user_id: uuid.UUID, catalog: ProductCatalog) -> None:
    """Write the user's headline entitlement onto the profile (tier, status, period end)."""
    best = headline(await uow.purchases.entitlements_of(user_id), catalog)
    if best is None:
        return
    await uow.profiles.set_subscription(
        user_id, tier=plan_tier(best, catalog), status=best.status.value, expires_at=best.period_end
    )


# --- the scheduler's side -------------------------------------------------------------


async def grant_due_allowances(
    uow_factory: UnitOfWorkFactory,
    *,
    catalog: ProductCatalog,
    now: datetime,
    limit: int = 500,
    kick: Kick | None = None,
    realtime: RealtimePublisher | None = None,
) -> int:
    """Grant every allowance month that has started (yearly plans' months 2-12, and any
    month whose grant an event did not make). One unit of work per subscription; safe
    to run any number of times, concurrently. Returns the credits granted. ``kick``:
    the push delivery, started after a grant's commit (its outbox row is the
    guarantee; the kick saves waiting for the reconciler). ``realtime``: each grant's
    new balance is announced after its commit (``credits.changed``)."""
    async with uow_factory() as uow:
        due = await uow.purchases.due_entitlements(now, limit=limit)
    total = 0
    for stale in due:
        async with uow_factory() as uow:
            await uow.purchases.lock(stale.store, stale.original_transaction_id)
            await uow.ledger.lock_account(stale.user_id)
            entitlement = await uow.purchases.get_entitlement(
                stale.store, stale.original_transaction_id
            )
            if entitlement is None:
                continue
            entitlement, granted = await _grant_due_month(uow, entitlement, catalog, now)
            await uow.purchases.save_entitlement(entitlement)
            if granted and kick is not None:
                uow.after_commit(kick)
            credits_changed(uow, realtime)
            await uow.commit()
        total += granted
    return total


async def subscription_of(
    uow: UnitOfWork, user_id: uuid.UUID, catalog: ProductCatalog
) -> SubscriptionView | None:
    """The user's headline subscription for ``GET /v1/subscription``: the plan the
    profile names (``sync_profile``), by the same rule."""
    best = headline(await uow.purchases.entitlements_of(user_id), catalog)
    if best is None:
        return None
    product = catalog.get(best.product_id)
    if product is None:
        return None
    next_at = best.next_allowance_at
    if next_at is None and best.entitled and best.auto_renew:
        next_at = best.period_end  # the renewal's first month
    return SubscriptionView(
        entitlement=best,
        product=product,
        next_allowance_at=next_at,
        next_allowance_credits=product.credits if next_at is not None else 0,
    )
