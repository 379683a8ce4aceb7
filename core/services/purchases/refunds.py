"""Refunds, revocations and their reversals."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.analytics import credits_clawed_back, subscription_changed
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.purchases.early_revocations import EarlyRevocation
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
    end_entitlement,
)
from genstudio.core.model.purchases.products import ProductCatalog, ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    WHOLE_SHARE,
    EntitlementStatus,
    RefundReversal,
    Revocation,
    RevocationReason,
)
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import (
    add_credits,
    claw_back_lot,
    claw_back_part,
    forgive_owed,
    reopen_lot,
    return_to_lot,
)
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY
from genstudio.core.services.purchases.outcomes import EventOutcome
from genstudio.core.services.purchases.subscriptions import (
    _ENDED_BY,
    _grant_due_month,
    _paid_by_store,
    sync_profile,
)
from genstudio.ports.unit_of_work import UnitOfWork


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


async def _unclaimed_or_locked(
    uow: UnitOfWork, event: Revocation | RefundReversal
) -> tuple[StoreTransaction | None, Entitlement | None, uuid.UUID | None]:
    """``_lock_for``; where nobody claimed the purchase, read again under the lock a
    claim takes (the purchase's id), so that a claim committing meanwhile is seen."""
    found = await _lock_for(uow, event.store, event.transaction_id, event.original_transaction_id)
    if found[2] is not None:
        return found
    await uow.purchases.lock(event.store, event.original_transaction_id or event.transaction_id)
    return await _lock_for(uow, event.store, event.transaction_id, event.original_transaction_id)


async def _keep_early(
    uow: UnitOfWork, event: Revocation | RefundReversal, now: datetime
) -> EventOutcome:
    """News about a purchase nobody claimed yet is kept, not forgotten: a refund's
    refuses a later claim of it (``claims.refuse_if_revoked``), a reversal that
    happened after it lifts that (issue #19)."""
    reversal = isinstance(event, RefundReversal)
    reason = event.reason if isinstance(event, Revocation) else RevocationReason.REFUND
    await uow.purchases.keep_early_revocation(
        EarlyRevocation(
            store=event.store,
            transaction_id=event.transaction_id,
            original_transaction_id=event.original_transaction_id,
            reason=reason,
            occurred_at=event.occurred_at,
            recorded_at=now,
            reversed=reversal,
        )
    )
    return EventOutcome(action="kept:reversed_before_claim" if reversal else "kept:before_claim")


async def revoke(
    uow: UnitOfWork,
    event: Revocation,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
) -> EventOutcome:
    """A refund or revocation: claw back what the pack or the subscription payment
    granted, under the purchase's lock and the owner's account lock. ``analytics``:
    the clawback and a subscription it ends are tracked after the commit (issue #20)."""
    tx, entitlement, owner = await _unclaimed_or_locked(uow, event)
    if owner is None:
        return await _keep_early(uow, event, now)
    status = (
        TransactionStatus.REFUNDED
        if event.reason is RevocationReason.REFUND
        else TransactionStatus.REVOKED
    )
    if tx is not None and tx.kind is ProductKind.CONSUMABLE:
        outcome = await _revoke_pack(uow, event, tx, owner, status, catalog, now)
    elif entitlement is None:
        return EventOutcome(action="unknown_transaction", user_id=owner)
    else:
        outcome = await _revoke_payment(
            uow, event, tx, entitlement, owner, status, catalog, now, analytics
        )
    if outcome.credits > 0:
        product = tx.product_id if tx is not None else None
        taken = credits_clawed_back(
            owner,
            store=event.store.value,
            product=product or (entitlement.product_id if entitlement is not None else None),
            amount=outcome.credits,
            reason=event.reason.value,
            at=now,
        )
        track(uow, analytics, taken)
        # told in the clawback's transaction (issue #18); one per store event
        reference = f"{event.store}:{event.transaction_id}:{event.occurred_at.isoformat()}"
        told = events.credits_clawed_back(owner, outcome.credits, reference)
        await ROWS_ONLY.tell(uow, told, now)
    return outcome


async def _revoke_pack(
    uow: UnitOfWork,
    event: Revocation,
    tx: StoreTransaction,
    owner: uuid.UUID,
    status: TransactionStatus,
    catalog: ProductCatalog,
    now: datetime,
) -> EventOutcome:
    reference = f"{event.store}:{event.transaction_id} {event.reason.value}"
    clawed = 0
    if _stale(tx, event.occurred_at):  # a reversal that happened after it came first
        return EventOutcome(action="stale", user_id=owner)
    owed = None  # all of it
    part = None
    if not event.whole:
        part = _revoked_part(event, tx, catalog)
        if part is None:
            return EventOutcome(action="unsized_partial_refund", user_id=owner)
        owed = _share_of(tx.credits, part)
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
            part = None  # all of it
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
    if tx.status is not TransactionStatus.REVOKED:
        tx = _refunded_money(tx, event, part)
    await uow.purchases.update_transaction(
        msgspec.structs.replace(tx, revocation_event_at=event.occurred_at)
    )
    return EventOutcome(action=action, user_id=owner, credits=clawed)


async def _revoke_payment(
    uow: UnitOfWork,
    event: Revocation,
    tx: StoreTransaction | None,
    entitlement: Entitlement,
    owner: uuid.UUID,
    status: TransactionStatus,
    catalog: ProductCatalog,
    now: datetime,
    analytics: Tracker | None = None,
) -> EventOutcome:
    reference = f"{event.store}:{event.transaction_id} {event.reason.value}"
    clawed = 0
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
    # Apple's prorated refund of a payment (its share of the period left): the months
    # the payment granted give back what exceeds the part the customer still paid for
    share = event.revoked_share if event.revoked_quantity is None else None
    if share is not None and share < WHOLE_SHARE:
        clawed = await _claw_back_share(
            uow, paid_by, share, entitlement, owner, catalog, reference, now
        )
    else:
        share = None  # all of it (a quantity is a pack's, never a payment's)
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
        if event.reason is RevocationReason.REFUND:
            part = None if share is None else (share, WHOLE_SHARE)
            payment = _refunded_money(payment, event, part)
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
        ended = end_entitlement(entitlement, _ENDED_BY[status], event.occurred_at, now)
        await uow.purchases.save_entitlement(ended)
        track(uow, analytics, subscription_changed(entitlement, ended, now))
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


def _revoked_part(
    event: Revocation, tx: StoreTransaction, catalog: ProductCatalog
) -> tuple[int, int] | None:
    """The part of a pack the store has taken back in all so far (a partial
    revocation), as (numerator, denominator): Apple's share of the whole transaction,
    or Google's items of the pack's quantity; None where its items cannot be sized
    (the pack left the catalog)."""
    if event.revoked_share is not None:
        return event.revoked_share, WHOLE_SHARE
    assert event.revoked_quantity is not None
    # a pack's credits per item are the product's: its id names them (credits_550)
    product = catalog.get(tx.product_id)
    if product is None or tx.credits % product.credits:
        return None
    items = tx.credits // product.credits
    return min(items, event.revoked_quantity), items


def _share_of(credits: int, part: tuple[int, int]) -> int:
    """The credits of ``part`` of ``credits``, rounded down: in the user's favour, a
    refund never claims a fraction of a credit beyond what it refunded (Apple rounds
    its share to 0.001%: a third of 300 credits, 33.333%, claims 99)."""
    numerator, denominator = part
    return credits * numerator // denominator


def _refunded_money(
    tx: StoreTransaction, event: Revocation, part: tuple[int, int] | None
) -> StoreTransaction:
    """``tx`` with what the store's refunds gave back of its price so far (the
    figures of ``GET /v1/admin/stats``): its price for all of it, the part's for a
    partial refund, never less than earlier news said. A revocation gives no money
    back; an unpriced transaction has none to give."""
    if event.reason is not RevocationReason.REFUND or tx.price is None:
        return tx
    given = tx.price.amount_micros if part is None else tx.price.part(*part)
    return msgspec.structs.replace(tx, refunded_micros=max(tx.refunded_micros or 0, given))


async def _claw_back_share(
    uow: UnitOfWork,
    paid_by: list[AllowanceGrant],
    share: int,
    entitlement: Entitlement,
    owner: uuid.UUID,
    catalog: ProductCatalog,
    reference: str,
    now: datetime,
) -> int:
    """A prorated refund of a subscription payment (Apple: ``revocationPercentage``
    of the period's price, by the time left in it). The payment paid for its plan's
    allowance over its whole billing period; the customer keeps the part of it they
    still paid for (rounded up: in their favour), and the months it granted give back
    what they hold beyond that, latest month first, as far as their lots still hold
    credits (spent credits stay spent, as with a full refund). A monthly plan's 50%
    refund takes back half its month; a yearly plan's refund of the months not yet
    begun takes back nothing (those months are never granted: access ends). The
    share is the payment's in all so far, so news applied again takes nothing more.
    Returns the credits taken."""
    product = catalog.get(paid_by[0].product_id if paid_by else entitlement.product_id)
    if product is None or product.period is None:  # the plan left the catalog: a month
        paid_for = max((g.credits for g in paid_by), default=0)
    else:
        paid_for = product.credits * product.period.months
    kept = paid_for - _share_of(paid_for, (share, WHOLE_SHARE))
    granted = sum(g.credits for g in paid_by)
    due = max(0, granted - kept) - sum(g.clawed_back for g in paid_by)
    clawed = 0
    for grant in sorted(paid_by, key=lambda g: g.month_start, reverse=True):
        if due <= 0:
            break
        found = await uow.ledger.lots_by_id([grant.lot_id])
        lot = found[0] if found else None
        if lot is None or lot.is_expired(now):
            continue
        want = min(due, grant.credits - grant.clawed_back, lot.remaining)
        taken = await claw_back_part(
            uow, user_id=owner, lot_id=grant.lot_id, amount=want, reference=reference, now=now
        )
        if taken:
            await uow.purchases.update_grant(
                msgspec.structs.replace(grant, clawed_back=grant.clawed_back + taken)
            )
        clawed += taken
        due -= taken
    return clawed


def _stale(tx: StoreTransaction, occurred_at: datetime) -> bool:
    """Refund news about a transaction (a pack, a subscription payment) older than the
    latest already applied: a reversal that happened after the refund it reverses but
    came first makes that refund stale."""
    return tx.revocation_event_at is not None and occurred_at <= tx.revocation_event_at


async def reverse_refund(
    uow: UnitOfWork, event: RefundReversal, catalog: ProductCatalog, now: datetime
) -> EventOutcome:
    """A refund the store undid: what the refund clawed back comes back, and access
    with it, under the purchase's lock and the owner's account lock."""
    tx, entitlement, owner = await _unclaimed_or_locked(uow, event)
    if owner is None:
        return await _keep_early(uow, event, now)
    if tx is not None and tx.kind is ProductKind.CONSUMABLE:
        return await _reinstate_pack(uow, event, tx, owner, now)
    if entitlement is None:
        return EventOutcome(action="unknown_transaction", user_id=owner)
    return await _reinstate_payment(uow, event, tx, entitlement, owner, catalog, now)


async def _reinstate_pack(
    uow: UnitOfWork,
    event: RefundReversal,
    tx: StoreTransaction,
    owner: uuid.UUID,
    now: datetime,
) -> EventOutcome:
    reference = f"{event.store}:{event.transaction_id} refund reversed"
    restored = 0
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
    # refund it reverses): that refund, arriving later, is then stale; no money is
    # refunded any more
    await uow.purchases.update_transaction(
        msgspec.structs.replace(tx, revocation_event_at=event.occurred_at, refunded_micros=None)
    )
    return EventOutcome(action="reinstated", user_id=owner, credits=restored)


async def _reinstate_payment(
    uow: UnitOfWork,
    event: RefundReversal,
    tx: StoreTransaction | None,
    entitlement: Entitlement,
    owner: uuid.UUID,
    catalog: ProductCatalog,
    now: datetime,
) -> EventOutcome:
    reference = f"{event.store}:{event.transaction_id} refund reversed"
    restored = 0
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
                payment,
                status=TransactionStatus.GRANTED,
                revocation_event_at=event.occurred_at,
                refunded_micros=None,
            )
        )
    restored += await _restore_access(uow, event, entitlement, owner, names_chain, catalog, now)
    return EventOutcome(action="reinstated", user_id=owner, credits=restored)


async def _restore_access(
    uow: UnitOfWork,
    event: RefundReversal,
    entitlement: Entitlement,
    owner: uuid.UUID,
    names_chain: bool,
    catalog: ProductCatalog,
    now: datetime,
) -> int:
    """Access comes back unless the current period's own payment is still refunded (a
    reversal of an earlier month's refund does not undo the current one's); returns the
    credits of the month granted again."""
    restored = 0
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
    return restored
