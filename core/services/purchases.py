"""Use cases for money in: store purchases, subscriptions, allowances, refunds.

Each function that takes a ``uow`` runs inside a unit of work the caller owns and
commits. Lock order, everywhere: the purchase (``uow.purchases.lock``) first, then
the account (``uow.ledger.lock_account``), so concurrent deliveries of one purchase
(the app posting it twenty times, a webhook racing the app) run one after the
other and the second sees what the first committed.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from core.credits import EntryKind
from core.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
    apply_snapshot,
    end_entitlement,
    new_entitlement,
)
from core.errors import InvalidPurchase, PurchaseOwnedElsewhere, StoreUnavailable
from core.products import Product, ProductCatalog, ProductKind, Store
from core.profiles import SubscriptionTier
from core.services.credits import (
    add_credits,
    claw_back_lot,
    claw_back_part,
    forgive_owed,
    reopen_lot,
    return_to_lot,
)
from core.store_events import (
    WHOLE_SHARE,
    EntitlementStatus,
    Informational,
    Purchase,
    RefundReversal,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from ports.repositories import UnitOfWork, UnitOfWorkFactory

#: Google refunds a purchase nobody acknowledged within three days
ACKNOWLEDGE_WITHIN = timedelta(days=3)

#: what a refunded or revoked payment makes of the period it paid for
_ENDED_BY = {
    TransactionStatus.REFUNDED: EntitlementStatus.REFUNDED,
    TransactionStatus.REVOKED: EntitlementStatus.REVOKED,
}


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


class SubscriptionView(msgspec.Struct, frozen=True, kw_only=True):
    entitlement: Entitlement
    product: Product
    next_allowance_at: datetime | None
    next_allowance_credits: int


def _paid_by_store(store: Store) -> bool:
    # Apple: the app finishes the transaction; Google: we must acknowledge it
    return store is Store.APPLE


# --- purchases the app presents -----------------------------------------------------


async def claim_purchase(
    uow: UnitOfWork,
    event: Purchase | SubscriptionSnapshot,
    *,
    user_id: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
) -> PurchaseOutcome:
    """The signed-in user presents a purchase the adapter verified with the store.

    The purchase must have been made for this user (the store's account token);
    a transaction is owned by the first account that presents it, forever: another
    account gets PurchaseOwnedElsewhere, the owner again gets the first result.
    """
    if event.user_id != user_id:
        raise PurchaseOwnedElsewhere("this purchase was made for another account")
    product = catalog.require_for_store(event.store, event.store_product_id)
    await uow.profiles.ensure(user_id, None)
    await uow.purchases.lock(event.store, event.original_transaction_id)
    await uow.ledger.lock_account(user_id)
    if isinstance(event, Purchase):
        if product.kind is not ProductKind.CONSUMABLE:
            raise InvalidPurchase(f"{product.id} is a subscription", field="productId")
        return await _record_pack(uow, event, product, user_id, now)
    if product.kind is not ProductKind.SUBSCRIPTION:
        raise InvalidPurchase(f"{product.id} is not a subscription", field="productId")
    return await _record_subscription(uow, event, product, user_id, catalog, now)


async def _owned(
    uow: UnitOfWork, store: Store, transaction_id: str, user_id: uuid.UUID
) -> StoreTransaction | None:
    existing = await uow.purchases.get_transaction(store, transaction_id)
    if existing is not None and existing.user_id != user_id:
        raise PurchaseOwnedElsewhere("this purchase belongs to another account")
    return existing


async def _record_pack(
    uow: UnitOfWork, event: Purchase, product: Product, user_id: uuid.UUID, now: datetime
) -> PurchaseOutcome:
    existing = await _owned(uow, event.store, event.transaction_id, user_id)
    if existing is not None:
        return PurchaseOutcome(
            store=event.store,
            transaction_id=existing.transaction_id,
            product_id=existing.product_id,
            credits_granted=0,
            credits_total=existing.credits,
            replayed=True,
        )
    if event.quantity < 1:
        raise InvalidPurchase("a purchase of no items", field="quantity")
    credits = product.credits * event.quantity
    entry = await add_credits(
        uow,
        user_id=user_id,
        amount=credits,
        kind=EntryKind.PURCHASE,
        reference=f"{event.store}:{event.transaction_id} {product.id}",
        idempotency_key=f"purchase:{event.store}:{event.transaction_id}",
        now=now,
    )
    await uow.purchases.add_transaction(
        StoreTransaction(
            store=event.store,
            transaction_id=event.transaction_id,
            user_id=user_id,
            original_transaction_id=event.original_transaction_id,
            product_id=product.id,
            store_product_id=event.store_product_id,
            kind=ProductKind.CONSUMABLE,
            credits=credits,
            lot_id=entry.lot_id,
            status=TransactionStatus.GRANTED,
            purchased_at=event.purchased_at,
            created_at=now,
            acknowledged=_paid_by_store(event.store),
        )
    )
    return PurchaseOutcome(
        store=event.store,
        transaction_id=event.transaction_id,
        product_id=product.id,
        credits_granted=credits,
        credits_total=credits,
        replayed=False,
    )


async def _record_subscription(
    uow: UnitOfWork,
    event: SubscriptionSnapshot,
    product: Product,
    user_id: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
) -> PurchaseOutcome:
    existing = await _owned(uow, event.store, event.transaction_id, user_id)
    entitlement, granted = await _apply_subscription(uow, event, product, user_id, catalog, now)
    grants = await uow.purchases.grants(event.store, event.original_transaction_id)
    return PurchaseOutcome(
        store=event.store,
        transaction_id=event.transaction_id,
        product_id=entitlement.product_id,
        credits_granted=granted,
        credits_total=sum(g.credits for g in grants),
        replayed=existing is not None,
        entitlement=entitlement,
    )


async def _apply_subscription(
    uow: UnitOfWork,
    event: SubscriptionSnapshot,
    product: Product,
    user_id: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
) -> tuple[Entitlement, int]:
    """Apply the store's view; grant the allowance month due. Locks must be held."""
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
            )
        )
    entitlement, granted = await _grant_due_month(uow, entitlement, catalog, now)
    await uow.purchases.save_entitlement(entitlement)
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
        payment.purchased_at != entitlement.period_start or payment.product_id != product.id
    ):
        # recorded by refund news, which does not say what the payment bought
        await uow.purchases.update_transaction(
            msgspec.structs.replace(
                payment,
                product_id=product.id,
                store_product_id=event.store_product_id,
                purchased_at=entitlement.period_start,
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


_TIER_RANK = {SubscriptionTier.FREE: 0, SubscriptionTier.PRO: 1, SubscriptionTier.PREMIUM: 2}


async def sync_profile(uow: UnitOfWork, user_id: uuid.UUID, catalog: ProductCatalog) -> None:
    """Write the user's headline entitlement onto the profile (tier, status, period end)."""
    entitlements = await uow.purchases.entitlements_of(user_id)
    if not entitlements:
        return
    entitled = [e for e in entitlements if e.entitled]

    def tier_of(e: Entitlement) -> SubscriptionTier:
        product = catalog.get(e.product_id)
        return product.tier if product is not None and product.tier else SubscriptionTier.FREE

    if entitled:
        best = max(entitled, key=lambda e: (_TIER_RANK[tier_of(e)], e.period_end))
        tier = tier_of(best)
    else:
        best = max(entitlements, key=lambda e: (e.updated_at, e.period_end))
        tier = SubscriptionTier.FREE
    await uow.profiles.set_subscription(
        user_id, tier=tier, status=best.status.value, expires_at=best.period_end
    )


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
) -> list[EventOutcome]:
    """Apply one verified store notification once, committed before returning.

    A redelivery (same notification id) changes nothing and returns ``duplicate``.
    """
    async with uow_factory() as uow:
        if not await uow.purchases.record_notification(store, notification_id, kind, now):
            return [EventOutcome(action="duplicate")]
        outcomes = [
            await apply_store_event(uow, event, catalog=catalog, now=now) for event in events
        ]
        await uow.commit()
    return outcomes


async def apply_store_event(
    uow: UnitOfWork, event: StoreEvent, *, catalog: ProductCatalog, now: datetime
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
                uow, event, user_id=event.user_id, catalog=catalog, now=now
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
        return await _apply_snapshot_event(uow, event, catalog, now)
    if isinstance(event, Revocation):
        return await _revoke(uow, event, catalog, now)
    return await _reverse_refund(uow, event, catalog, now)


async def _apply_snapshot_event(
    uow: UnitOfWork, event: SubscriptionSnapshot, catalog: ProductCatalog, now: datetime
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
    entitlement, granted = await _apply_subscription(uow, event, product, owner, catalog, now)
    return EventOutcome(action=entitlement.status.value, user_id=owner, credits=granted)


async def _find(
    uow: UnitOfWork, store: Store, transaction_id: str, original: str | None
) -> tuple[StoreTransaction | None, Entitlement | None]:
    tx = await uow.purchases.get_transaction(store, transaction_id)
    if tx is None and original is not None:
        tx = await uow.purchases.get_transaction(store, original)
    original = original or (tx.original_transaction_id if tx is not None else None)
    entitlement = None
    if original is not None:
        entitlement = await uow.purchases.get_entitlement(store, original)
    return tx, entitlement


async def _lock_for(
    uow: UnitOfWork, store: Store, transaction_id: str, original: str | None
) -> tuple[StoreTransaction | None, Entitlement | None, uuid.UUID | None]:
    tx, entitlement = await _find(uow, store, transaction_id, original)
    key = (
        entitlement.original_transaction_id
        if entitlement
        else tx.original_transaction_id
        if tx
        else None
    )
    if key is None:
        return None, None, None
    await uow.purchases.lock(store, key)
    tx, entitlement = await _find(uow, store, transaction_id, original)  # re-read under the lock
    owner = tx.user_id if tx is not None else entitlement.user_id if entitlement else None
    if owner is not None:
        await uow.ledger.lock_account(owner)
    return tx, entitlement, owner


async def _revoke(
    uow: UnitOfWork, event: Revocation, catalog: ProductCatalog, now: datetime
) -> EventOutcome:
    tx, entitlement, owner = await _lock_for(
        uow, event.store, event.transaction_id, event.original_transaction_id
    )
    if owner is None:
        return EventOutcome(action="unknown_transaction")
    status = (
        TransactionStatus.REFUNDED
        if event.reason is RevocationReason.REFUND
        else TransactionStatus.REVOKED
    )
    reference = f"{event.store}:{event.transaction_id} {event.reason.value}"
    clawed = 0
    if tx is not None and tx.kind is ProductKind.CONSUMABLE:
        if _stale(tx, event.occurred_at):  # a reversal that happened after it came first
            return EventOutcome(action="stale", user_id=owner)
        owed = None  # all of it
        if not event.whole:
            owed = _revoked_credits(event, tx, catalog)
            if owed is None:
                return EventOutcome(action="unsized_partial_refund", user_id=owner)
        action = f"clawed_back:{status.value}"
        lot_id = tx.lot_id
        if tx.status is TransactionStatus.GRANTED and lot_id is not None:
            # clawed_back, while the pack is granted: what partial refunds claimed,
            # taken or still owed by the lot (jobs held it); once refunded or revoked:
            # what was taken, for a reversal to give back
            if owed is None or owed >= tx.credits:  # all of it: the lot ends
                forgiven = await forgive_owed(uow, user_id=owner, lot_id=lot_id)
                clawed = await claw_back_lot(
                    uow, user_id=owner, lot_id=lot_id, reference=reference, now=now
                )
                tx = msgspec.structs.replace(
                    tx, status=status, clawed_back=tx.clawed_back - forgiven + clawed
                )
            else:
                # cumulative: what the store took back in all, less what earlier
                # partial refunds already claimed; the pack stays granted for the rest
                clawed = await claw_back_part(
                    uow,
                    user_id=owner,
                    lot_id=lot_id,
                    amount=owed - tx.clawed_back,
                    reference=f"{reference} {owed}/{tx.credits}",
                    now=now,
                )
                tx = msgspec.structs.replace(tx, clawed_back=max(tx.clawed_back, owed))
                action = "clawed_back:partial"
        await uow.purchases.update_transaction(
            msgspec.structs.replace(tx, revocation_event_at=event.occurred_at)
        )
        return EventOutcome(action=action, user_id=owner, credits=clawed)
    if entitlement is None:
        return EventOutcome(action="unknown_transaction", user_id=owner)
    payment = _named(tx, event.transaction_id)
    names_chain = _names_chain(event.store, event.transaction_id, entitlement)
    if payment is not None and _stale(payment, event.occurred_at):
        return EventOutcome(action="stale", user_id=owner)
    # the refunded payment is the current one: its latest; or, on Google, a void that
    # names the purchase token (the chain) rather than an order. Not the original id on
    # Apple: there the first payment's transactionId is the original's, and refunding
    # that first month after a renewal must not end the paid period that follows.
    current_payment = event.transaction_id == entitlement.latest_transaction_id or names_chain
    grants = await uow.purchases.grants(event.store, entitlement.original_transaction_id)
    paid_by = [g for g in grants if g.transaction_id == event.transaction_id]
    if not paid_by and current_payment:  # the current period's, however it was granted
        paid_by = [g for g in grants if g.month_start >= entitlement.period_start]
    for grant in paid_by:
        taken = await claw_back_lot(
            uow, user_id=owner, lot_id=grant.lot_id, reference=reference, now=now
        )
        if taken:
            await uow.purchases.update_grant(
                msgspec.structs.replace(grant, clawed_back=grant.clawed_back + taken)
            )
        clawed += taken
    if payment is not None:
        if payment.status is TransactionStatus.GRANTED:
            payment = msgspec.structs.replace(payment, status=status)
        await uow.purchases.update_transaction(
            msgspec.structs.replace(payment, revocation_event_at=event.occurred_at)
        )
    elif not names_chain:
        # a payment whose own news has not come yet (the store retries a renewal's news
        # for days): it paid for nothing granted yet; recorded, so that its news, when it
        # comes, neither entitles nor grants the period it paid for
        await uow.purchases.add_transaction(
            _unheard_payment(event, entitlement, catalog, status, now)
        )
    if current_payment or event.reason is RevocationReason.REVOKE:
        await uow.purchases.save_entitlement(
            end_entitlement(entitlement, _ENDED_BY[status], event.occurred_at, now)
        )
        await sync_profile(uow, owner, catalog)
    return EventOutcome(action=f"clawed_back:{status.value}", user_id=owner, credits=clawed)


def _named(tx: StoreTransaction | None, transaction_id: str) -> StoreTransaction | None:
    """The payment refund news names, if known; not the chain's first one, which
    ``_find`` falls back to for news that names no payment we know."""
    return tx if tx is not None and tx.transaction_id == transaction_id else None


def _names_chain(store: Store, transaction_id: str, entitlement: Entitlement) -> bool:
    """News about the whole subscription, not one payment: Google's void may name the
    purchase token. (On Apple the original id is the first payment's.)"""
    return store is Store.GOOGLE and transaction_id == entitlement.original_transaction_id


def _unheard_payment(
    event: Revocation | RefundReversal,
    entitlement: Entitlement,
    catalog: ProductCatalog,
    status: TransactionStatus,
    now: datetime,
) -> StoreTransaction:
    """A subscription payment known only from refund news so far: what it bought is the
    plan as far as we know; ``_refunded_before_news`` puts right what the payment's
    own news says (its plan, its period's start)."""
    product = catalog.get(entitlement.product_id)
    store_product_id = product.store_id(event.store) if product is not None else None
    return StoreTransaction(
        store=event.store,
        transaction_id=event.transaction_id,
        user_id=entitlement.user_id,
        original_transaction_id=entitlement.original_transaction_id,
        product_id=entitlement.product_id,
        store_product_id=store_product_id or entitlement.product_id,
        kind=ProductKind.SUBSCRIPTION,
        credits=0,
        lot_id=None,
        status=status,
        purchased_at=event.occurred_at,  # not known yet
        created_at=now,
        # a payment the store took back needs no acknowledgement
        acknowledged=_paid_by_store(event.store) or status is not TransactionStatus.GRANTED,
        revocation_event_at=event.occurred_at,
    )


def _revoked_credits(
    event: Revocation, tx: StoreTransaction, catalog: ProductCatalog
) -> int | None:
    """The credits of a pack the store has taken back in all so far (a partial
    revocation); None where its items cannot be sized (the pack left the catalog)."""
    if event.revoked_share is not None:
        # Apple rounds the share to 0.001%: the nearest credit is the intended one
        return (tx.credits * event.revoked_share + WHOLE_SHARE // 2) // WHOLE_SHARE
    assert event.revoked_quantity is not None
    # a pack's credits per item are the product's: its id names them (credits_550)
    product = catalog.get(tx.product_id)
    if product is None or tx.credits % product.credits:
        return None
    return min(tx.credits, product.credits * event.revoked_quantity)


def _stale(tx: StoreTransaction, occurred_at: datetime) -> bool:
    """Refund news about a transaction (a pack, a subscription payment) older than the
    latest already applied: a reversal that happened after the refund it reverses but
    came first makes that refund stale."""
    return tx.revocation_event_at is not None and occurred_at <= tx.revocation_event_at


async def _reverse_refund(
    uow: UnitOfWork, event: RefundReversal, catalog: ProductCatalog, now: datetime
) -> EventOutcome:
    tx, entitlement, owner = await _lock_for(
        uow, event.store, event.transaction_id, event.original_transaction_id
    )
    if owner is None:
        return EventOutcome(action="unknown_transaction")
    reference = f"{event.store}:{event.transaction_id} refund reversed"
    restored = 0
    if tx is not None and tx.kind is ProductKind.CONSUMABLE:
        if _stale(tx, event.occurred_at):
            return EventOutcome(action="stale", user_id=owner)
        if tx.status is TransactionStatus.GRANTED and tx.clawed_back > 0 and tx.lot_id:
            # a partial refund undone: what it took goes back to the pack's live lot,
            # what the lot still owed (jobs held it) is owed no more
            forgiven = await forgive_owed(uow, user_id=owner, lot_id=tx.lot_id)
            restored = await return_to_lot(
                uow,
                user_id=owner,
                lot_id=tx.lot_id,
                amount=tx.clawed_back - forgiven,
                reference=reference,
                now=now,
            )
            tx = msgspec.structs.replace(tx, clawed_back=tx.clawed_back - forgiven - restored)
        elif tx.status is not TransactionStatus.GRANTED:
            lot_id = tx.lot_id
            # the pack's own lot lives again: what the refund took, and what jobs held
            # then and gave back after (it expired on the ended lot), come back to it
            back = (
                await reopen_lot(
                    uow,
                    user_id=owner,
                    lot_id=lot_id,
                    taken=tx.clawed_back,
                    reference=reference,
                    now=now,
                )
                if lot_id is not None
                else None
            )
            if back is not None:
                restored = back
            elif tx.clawed_back > 0:
                entry = await add_credits(
                    uow,
                    user_id=owner,
                    amount=tx.clawed_back,
                    kind=EntryKind.PURCHASE,
                    reference=reference,
                    idempotency_key=f"reinstate:{tx.lot_id}",
                    now=now,
                )
                lot_id, restored = entry.lot_id, tx.clawed_back
            tx = msgspec.structs.replace(
                tx, status=TransactionStatus.GRANTED, clawed_back=0, lot_id=lot_id
            )
        # recorded even when there is nothing to reverse yet (it came before the
        # refund it reverses): that refund, arriving later, is then stale
        await uow.purchases.update_transaction(
            msgspec.structs.replace(tx, revocation_event_at=event.occurred_at)
        )
        return EventOutcome(action="reinstated", user_id=owner, credits=restored)
    if entitlement is None:
        return EventOutcome(action="unknown_transaction", user_id=owner)
    payment = _named(tx, event.transaction_id)
    names_chain = _names_chain(event.store, event.transaction_id, entitlement)
    if payment is not None and _stale(payment, event.occurred_at):
        return EventOutcome(action="stale", user_id=owner)
    if payment is None and not names_chain:
        # a payment whose own news has not come yet: nothing of it was granted, so
        # nothing comes back; recorded, so that the refund it reverses, should that come
        # later, is stale
        await uow.purchases.add_transaction(
            _unheard_payment(event, entitlement, catalog, TransactionStatus.GRANTED, now)
        )
        return EventOutcome(action="reinstated", user_id=owner)
    for grant in await uow.purchases.grants(event.store, entitlement.original_transaction_id):
        if grant.clawed_back == 0 or grant.month_end <= now:
            continue
        if grant.transaction_id != event.transaction_id and payment is not None:
            continue
        entry = await add_credits(
            uow,
            user_id=owner,
            amount=grant.clawed_back,
            kind=EntryKind.ALLOWANCE,
            reference=reference,
            idempotency_key=f"reinstate:{grant.lot_id}",
            now=now,
            expires_at=grant.month_end,
        )
        assert entry.lot_id is not None
        await uow.purchases.update_grant(
            msgspec.structs.replace(grant, clawed_back=0, lot_id=entry.lot_id)
        )
        restored += grant.clawed_back
    if payment is not None:
        # recorded even when there is nothing to reverse yet (it came before the
        # refund it reverses): that refund, arriving later, is then stale
        await uow.purchases.update_transaction(
            msgspec.structs.replace(
                payment, status=TransactionStatus.GRANTED, revocation_event_at=event.occurred_at
            )
        )
    # access comes back unless the current period's own payment is still refunded (a
    # reversal of an earlier month's refund does not undo the current one's)
    current = None
    if event.transaction_id != entitlement.latest_transaction_id and not names_chain:
        current = await uow.purchases.get_transaction(
            event.store, entitlement.latest_transaction_id
        )
    current_refunded = current is not None and current.status is not TransactionStatus.GRANTED
    if entitlement.status in _ENDED_BY.values() and not current_refunded:
        if entitlement.period_end > now:
            status = (
                EntitlementStatus.ACTIVE
                if entitlement.auto_renew
                else EntitlementStatus.AUTO_RENEW_OFF
            )
        else:
            status = EntitlementStatus.EXPIRED
        entitlement = end_entitlement(entitlement, status, event.occurred_at, now)
        entitlement, granted = await _grant_due_month(uow, entitlement, catalog, now)
        restored += granted
        await uow.purchases.save_entitlement(entitlement)
        await sync_profile(uow, owner, catalog)
    return EventOutcome(action="reinstated", user_id=owner, credits=restored)


# --- the scheduler's side -------------------------------------------------------------


async def grant_due_allowances(
    uow_factory: UnitOfWorkFactory, *, catalog: ProductCatalog, now: datetime, limit: int = 500
) -> int:
    """Grant every allowance month that has started (yearly plans' months 2-12, and any
    month whose grant an event did not make). One unit of work per subscription; safe
    to run any number of times, concurrently. Returns the credits granted."""
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
            await uow.commit()
        total += granted
    return total


async def subscription_of(
    uow: UnitOfWork, user_id: uuid.UUID, catalog: ProductCatalog
) -> SubscriptionView | None:
    """The user's headline subscription for ``GET /v1/subscription``."""
    entitlements = await uow.purchases.entitlements_of(user_id)
    if not entitlements:
        return None
    entitled = [e for e in entitlements if e.entitled]
    pool = entitled or entitlements
    best = max(pool, key=lambda e: (e.period_end, e.updated_at))
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


async def unacknowledged(
    uow_factory: UnitOfWorkFactory, *, store: Store, now: datetime, limit: int = 200
) -> list[StoreTransaction]:
    """Purchases the store still waits to hear we delivered (within its deadline)."""
    async with uow_factory() as uow:
        return await uow.purchases.unacknowledged(store, now - ACKNOWLEDGE_WITHIN, limit=limit)


async def mark_acknowledged(
    uow_factory: UnitOfWorkFactory, *, store: Store, transaction_id: str
) -> None:
    async with uow_factory() as uow:
        await uow.purchases.lock(store, transaction_id)
        tx = await uow.purchases.get_transaction(store, transaction_id)
        if tx is not None and not tx.acknowledged:
            await uow.purchases.update_transaction(msgspec.structs.replace(tx, acknowledged=True))
            await uow.commit()


class _Acknowledger(Protocol):
    async def acknowledge(self, transaction: StoreTransaction) -> None: ...


async def acknowledge_pending(
    uow_factory: UnitOfWorkFactory, client: _Acknowledger, *, store: Store, now: datetime
) -> int:
    """Tell the store about every delivered purchase it has not heard of yet (Google:
    within its three days). Safe to repeat; returns how many were acknowledged."""
    done = 0
    for tx in await unacknowledged(uow_factory, store=store, now=now):
        try:
            await client.acknowledge(tx)
        except StoreUnavailable:
            continue  # the next run tries again
        await mark_acknowledged(uow_factory, store=store, transaction_id=tx.transaction_id)
        done += 1
    return done
