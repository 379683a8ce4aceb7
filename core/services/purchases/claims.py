"""Claiming a purchase the app reports: a pack's credits or a subscription."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.analytics import credits_purchased
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import InvalidPurchase, PurchaseOwnedElsewhere
from genstudio.core.model.purchases.entitlements import (
    StoreTransaction,
    TransactionStatus,
)
from genstudio.core.model.purchases.products import Product, ProductCatalog, ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    Purchase,
    RevocationReason,
    SubscriptionSnapshot,
)
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import (
    add_credits,
)
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY, Kick
from genstudio.core.services.purchases.acknowledgements import Acknowledger, acknowledge_delivered
from genstudio.core.services.purchases.outcomes import PurchaseOutcome
from genstudio.core.services.purchases.subscriptions import (
    SubscriptionView,
    _apply_subscription,
    _paid_by_store,
    subscription_of,
)
from genstudio.core.services.realtime import credits_changed
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

# --- purchases the app presents -----------------------------------------------------


class Redemption(msgspec.Struct, frozen=True, kw_only=True):
    """What a claimed purchase did, with the account as it stands after it."""

    outcome: PurchaseOutcome
    balance: int
    subscription: SubscriptionView | None


async def redeem_purchase(
    uow_factory: UnitOfWorkFactory,
    event: Purchase | SubscriptionSnapshot,
    *,
    user_id: uuid.UUID,
    email: str | None,
    catalog: ProductCatalog,
    now: datetime,
    acknowledger: Acknowledger | None = None,
    kick: Kick | None = None,
    analytics: Tracker | None = None,
    realtime: RealtimePublisher | None = None,
) -> Redemption:
    """The signed-in user redeems a purchase the store adapter verified: claimed and
    committed in one unit of work (``claim_purchase``), then, where the store waits
    to hear of the delivery (Google), acknowledged with ``acknowledger`` after the
    commit: the credits exist before the store hears. The transaction's row is the
    outbox: an acknowledgement that fails (or never ran) is retried by
    ``acknowledge_pending`` within the store's deadline. ``realtime``: the new
    balance is announced after the commit (``credits.changed``), when credits moved."""
    async with uow_factory() as uow:
        await uow.profiles.ensure(user_id, email)
        outcome = await claim_purchase(
            uow, event, user_id=user_id, catalog=catalog, now=now, analytics=analytics
        )
        balance = await uow.ledger.balance(user_id)
        view = await subscription_of(uow, user_id, catalog)
        if acknowledger is not None:
            client = acknowledger

            async def acknowledge() -> None:
                await acknowledge_delivered(
                    uow_factory, client, store=event.store, transaction_id=outcome.transaction_id
                )

            uow.after_commit(acknowledge)
        if kick is not None and outcome.credits_granted:
            uow.after_commit(kick)  # the push of its credits_granted (issue #18)
        credits_changed(uow, realtime)  # the open app's balance (issue #18)
        await uow.commit()
    return Redemption(outcome=outcome, balance=balance, subscription=view)


async def claim_purchase(
    uow: UnitOfWork,
    event: Purchase | SubscriptionSnapshot,
    *,
    user_id: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
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
        outcome = await _record_pack(uow, event, product, user_id, now)
        if outcome.credits_granted:  # tracked after the commit (issue #20)
            bought = credits_purchased(
                user_id,
                store=event.store.value,
                product=product.id,
                amount=outcome.credits_granted,
                at=now,
            )
            track(uow, analytics, bought)
        return outcome
    if product.kind is not ProductKind.SUBSCRIPTION:
        raise InvalidPurchase(f"{product.id} is not a subscription", field="productId")
    return await _record_subscription(uow, event, product, user_id, catalog, now, analytics)


async def _owned(
    uow: UnitOfWork, store: Store, transaction_id: str, user_id: uuid.UUID
) -> StoreTransaction | None:
    existing = await uow.purchases.get_transaction(store, transaction_id)
    if existing is not None and existing.user_id != user_id:
        raise PurchaseOwnedElsewhere("this purchase belongs to another account")
    return existing


async def refuse_if_revoked(uow: UnitOfWork, event: Purchase | SubscriptionSnapshot) -> None:
    """Refuse a first claim of a transaction whose refund (or revocation) the store
    announced before anyone claimed it, unless a reversal came after it: keeping a
    purchase's signed data, getting it refunded and then redeeming it granted the
    credits, whether or not the store's API could be asked (issue #19). Raises
    InvalidPurchase."""
    early = await uow.purchases.early_revocation(event.store, event.transaction_id)
    if early is not None and not early.reversed:
        field = "signedTransaction" if event.store is Store.APPLE else "purchaseToken"
        what = "refunded" if early.reason is RevocationReason.REFUND else "revoked"
        raise InvalidPurchase(f"the store {what} this purchase before it was redeemed", field=field)


async def _record_pack(
    uow: UnitOfWork, event: Purchase, product: Product, user_id: uuid.UUID, now: datetime
) -> PurchaseOutcome:
    existing = await _owned(uow, event.store, event.transaction_id, user_id)
    if existing is None:
        await refuse_if_revoked(uow, event)
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
    # told in the grant's transaction (issue #18); delivered by the next outbox pass
    told = events.credits_granted(user_id, credits, "purchase", entry.id, product.id)
    await ROWS_ONLY.tell(uow, told, now)
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
            environment=event.environment,
            price=event.price,
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
    analytics: Tracker | None = None,
) -> PurchaseOutcome:
    existing = await _owned(uow, event.store, event.transaction_id, user_id)
    if existing is None:
        await refuse_if_revoked(uow, event)
    entitlement, granted = await _apply_subscription(
        uow, event, product, user_id, catalog, now, analytics
    )
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
