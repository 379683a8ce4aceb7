"""Refunds of part of a purchase (core/services/purchases/refunds.py on the memory
adapters): Apple's prorated refund of a subscription payment, and the property that
whatever order partial, full and repeated refund news about a pack arrives in, what
is clawed back is what the latest news applied says, rounded in the user's favour,
and never more than the pack granted; and what the stats read of the money."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store, add_months
from genstudio.core.model.purchases.store_events import (
    WHOLE_SHARE,
    EntitlementStatus,
    Purchase,
    RefundReversal,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.core.services.credits import place_hold, settle_hold
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.outcomes import EventOutcome
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from tests.unit.support import account, open_account, run

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PLAN_PRICE = Price(amount_micros=9_990_000, currency="USD")


async def _notify(
    factory: InMemoryUnitOfWorkFactory, event: StoreEvent, now: datetime
) -> EventOutcome:
    [outcome] = await handle_notification(
        factory,
        store=event.store,
        notification_id=str(uuid.uuid4()),
        kind="test",
        events=[event],
        catalog=DEFAULT_PRODUCTS,
        now=now,
    )
    return outcome


async def _subscribed(
    factory: InMemoryUnitOfWorkFactory, plan: str, months: int
) -> tuple[uuid.UUID, str]:
    user = await open_account(factory)
    original = f"o-{uuid.uuid4()}"
    snapshot = SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=T0,
        original_transaction_id=original,
        transaction_id=original,
        store_product_id=plan,
        user_id=user,
        status=EntitlementStatus.ACTIVE,
        auto_renew=True,
        period_start=T0,
        period_end=add_months(T0, months),
        price=PLAN_PRICE,
    )
    outcome = await _notify(factory, snapshot, T0)
    assert outcome.credits > 0, outcome
    return user, original


def _refund(original: str, at: datetime, share: int | None = None) -> Revocation:
    return Revocation(
        store=Store.APPLE,
        occurred_at=at,
        transaction_id=original,
        original_transaction_id=original,
        reason=RevocationReason.REFUND,
        revoked_share=share,
    )


async def _payment(factory: InMemoryUnitOfWorkFactory, tx: str) -> tuple[str, int | None]:
    async with factory() as uow:
        found = await uow.purchases.get_transaction(Store.APPLE, tx)
    assert found is not None
    return found.status.value, found.refunded_micros


async def test_a_prorated_refund_of_a_month_takes_back_its_share_of_the_allowance() -> None:
    """REFUND_PRORATED of 50% of a monthly payment (half the month left): half its
    500 credits go back, the access ends as for any refund; the same news again, or
    older news, takes nothing; the full refund after it takes only the rest."""
    factory = InMemoryUnitOfWorkFactory()
    user, original = await _subscribed(factory, "app.genstudio.pro.monthly", 1)
    assert (await account(factory, user)).balance == 500
    now = T0 + timedelta(days=15)
    half = await _notify(factory, _refund(original, now, 50_000), now)
    assert (half.action, half.credits) == ("clawed_back:refunded", 250)
    assert (await account(factory, user)).balance == 250
    assert await _payment(factory, original) == ("refunded", 4_995_000)
    async with factory() as uow:
        entitlement = await uow.purchases.get_entitlement(Store.APPLE, original)
    assert entitlement is not None and entitlement.status is EntitlementStatus.REFUNDED
    assert (await _notify(factory, _refund(original, now, 50_000), now)).credits == 0
    assert (await account(factory, user)).balance == 250

    later = now + timedelta(hours=1)
    rest = await _notify(factory, _refund(original, later), later)
    assert rest.credits == 250
    acc = await account(factory, user)
    assert acc.balance == 0 == sum(e.amount for e in acc.entries)
    assert sum(-e.amount for e in acc.of_kind(EntryKind.CLAWBACK)) == 500
    assert await _payment(factory, original) == ("refunded", 9_990_000)


async def test_a_prorated_refund_rounds_the_allowance_it_takes_back_down() -> None:
    """33.333% of 500 credits is 166.665: 166 go back, the user keeps 334."""
    factory = InMemoryUnitOfWorkFactory()
    user, original = await _subscribed(factory, "app.genstudio.pro.monthly", 1)
    now = T0 + timedelta(days=20)
    assert (await _notify(factory, _refund(original, now, 33_333), now)).credits == 166
    assert (await account(factory, user)).balance == 334


async def test_a_prorated_refund_takes_back_only_what_the_allowance_still_holds() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, original = await _subscribed(factory, "app.genstudio.pro.monthly", 1)
    async with factory() as uow:
        hold = await place_hold(uow, user_id=user, amount=400, reference="job", now=T0)
        await uow.commit()
    async with factory() as uow:
        assert await settle_hold(uow, hold.id, T0)
        await uow.commit()
    now = T0 + timedelta(days=15)
    # half (250) is due back: only 100 are left unspent, and spent credits stay spent
    assert (await _notify(factory, _refund(original, now, 50_000), now)).credits == 100
    acc = await account(factory, user)
    assert acc.balance == 0 == sum(e.amount for e in acc.entries)


async def test_a_prorated_refund_of_a_years_months_not_yet_begun_takes_nothing_back() -> None:
    """A yearly plan refunded by 75% after its first quarter paid for the three
    months granted so far: none of their credits go back; the months left are never
    granted (the access ended)."""
    factory = InMemoryUnitOfWorkFactory()
    user, original = await _subscribed(factory, "app.genstudio.pro.yearly", 12)
    assert (await account(factory, user)).balance == 500
    # a quarter in: the months granted so far, a month at a time
    now = T0
    for month in (1, 2):
        now = add_months(T0, month) + timedelta(minutes=1)
        await grant_due_allowances(factory, catalog=DEFAULT_PRODUCTS, now=now)
    assert (await account(factory, user)).balance == 1500
    three_quarters = await _notify(factory, _refund(original, now, 75_000), now)
    assert three_quarters.credits == 0
    assert (await account(factory, user)).balance == 1500
    # 95% of a year refunded at its start: the customer paid for 5% of 6000 credits,
    # 300; its first month granted 500, so 200 go back
    other_user, other = await _subscribed(factory, "app.genstudio.pro.yearly", 12)
    assert (await _notify(factory, _refund(other, T0, 95_000), T0)).credits == 200
    assert (await account(factory, other_user)).balance == 300


async def test_a_reversed_prorated_refund_gives_the_share_back() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, original = await _subscribed(factory, "app.genstudio.pro.monthly", 1)
    now = T0 + timedelta(days=10)
    await _notify(factory, _refund(original, now, 60_000), now)
    assert (await account(factory, user)).balance == 200
    later = now + timedelta(hours=1)
    reversal = RefundReversal(
        store=Store.APPLE,
        occurred_at=later,
        transaction_id=original,
        original_transaction_id=original,
    )
    assert (await _notify(factory, reversal, later)).credits == 300
    assert (await account(factory, user)).balance == 500
    assert await _payment(factory, original) == ("granted", None)


# -- the property: any order, any repetition ------------------------------------------

PACK = "app.genstudio.credits.100"

#: one refund news: (minutes after the purchase, share in milliunits or items, or
#: None for all of it)
News = tuple[int, int | None]


def _news(apple: bool) -> st.SearchStrategy[News]:
    part = st.integers(0, WHOLE_SHARE) if apple else st.integers(1, 4)
    return st.tuples(st.integers(1, 6), st.one_of(st.none(), part))


async def _pack_refunded(
    apple: bool, quantity: int, deliveries: list[News]
) -> tuple[int, int, list[int]]:
    factory = InMemoryUnitOfWorkFactory()
    user = await open_account(factory)
    store = Store.APPLE if apple else Store.GOOGLE
    tx = f"t-{uuid.uuid4()}"
    bought = Purchase(
        store=store,
        occurred_at=T0,
        transaction_id=tx,
        original_transaction_id=tx,
        store_product_id=PACK if apple else "credits_100",
        user_id=user,
        purchased_at=T0,
        quantity=quantity,
        price=Price(amount_micros=4_990_000 * quantity, currency="USD") if apple else None,
    )
    async with factory() as uow:
        await claim_purchase(uow, bought, user_id=user, catalog=DEFAULT_PRODUCTS, now=T0)
        await uow.commit()
    for minutes, part in deliveries:
        at = T0 + timedelta(minutes=minutes)
        event = Revocation(
            store=store,
            occurred_at=at,
            transaction_id=tx,
            original_transaction_id=tx,
            reason=RevocationReason.REFUND,
            revoked_share=part if apple else None,
            revoked_quantity=None if apple else part,
        )
        await _notify(factory, event, T0 + timedelta(hours=1))
    acc = await account(factory, user)
    assert acc.balance == sum(e.amount for e in acc.entries) >= 0
    clawed = sum(-e.amount for e in acc.of_kind(EntryKind.CLAWBACK))
    async with factory() as uow:
        found = await uow.purchases.get_transaction(store, tx)
    assert found is not None
    money = found.refunded_micros
    return clawed, acc.balance, [found.clawed_back, -1 if money is None else money]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    apple=st.booleans(),
    quantity=st.integers(1, 3),
    data=st.data(),
)
def test_refunds_in_any_order_claw_back_what_the_latest_applied_says_and_never_more(
    apple: bool, quantity: int, data: st.DataObject
) -> None:
    deliveries = data.draw(st.lists(_news(apple), min_size=1, max_size=6))
    # a delivery is applied when it happened after every one applied before it (news
    # about the same moment again, or older, is stale); the store's part is cumulative
    latest: int | None = None
    applied: list[int | None] = []
    for minutes, part in deliveries:
        if latest is None or minutes > latest:
            latest = minutes
            applied.append(part)
    granted = 100 * quantity
    if any(part is None for part in applied):
        want = granted  # refunded whole: whatever came after, all of it
    else:
        parts = [p for p in applied if p is not None]
        if apple:
            want = max(granted * p // WHOLE_SHARE for p in parts)
            if max(parts) >= WHOLE_SHARE:
                want = granted
        else:
            want = min(granted, 100 * max(parts))
    clawed, balance, (claimed, money) = run(_pack_refunded(apple, quantity, deliveries))
    assert clawed == want <= granted
    assert balance == granted - want
    assert claimed == want
    if apple:
        price = 4_990_000 * quantity
        whole = any(p is None or p >= WHOLE_SHARE for p in applied)
        share = WHOLE_SHARE if whole else max(p for p in applied if p is not None)
        assert money == price * share // WHOLE_SHARE
    else:
        assert money == -1  # Google's packs are unpriced: no money recorded


@pytest.mark.parametrize(("share", "credits"), [(50_000, 150), (33_333, 99), (1, 0)])
async def test_an_apple_pack_refunded_in_part_claims_its_share_rounded_down(
    share: int, credits: int
) -> None:
    clawed, balance, (claimed, money) = await _pack_refunded(True, 3, [(1, share)])
    assert (clawed, balance, claimed) == (credits, 300 - credits, credits)
    assert money == 14_970_000 * share // WHOLE_SHARE
