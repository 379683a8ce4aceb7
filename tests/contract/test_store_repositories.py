"""The purchase repository's contract (genstudio.ports.repositories.PurchaseRepository) and the
purchase use cases' money rules, over every unit-of-work adapter (memory, Postgres)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import DuplicateEntry, PurchaseOwnedElsewhere
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
)
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Purchase,
    Revocation,
    RevocationReason,
    SubscriptionSnapshot,
)
from genstudio.core.services.credits import add_credits, place_hold
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import apply_store_event
from genstudio.core.services.purchases.outcomes import PurchaseOutcome
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from tests.unit.support import account, open_account

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
CATALOG = DEFAULT_PRODUCTS


def pack(user: uuid.UUID | None, tx: str, credits: int = 100, at: datetime = T0) -> Purchase:
    return Purchase(
        store=Store.APPLE,
        occurred_at=at,
        transaction_id=tx,
        original_transaction_id=tx,
        store_product_id=f"app.genstudio.credits.{credits}",
        user_id=user,
        purchased_at=at,
    )


def plan(
    user: uuid.UUID | None,
    original: str,
    *,
    tx: str | None = None,
    product: str = "app.genstudio.pro.monthly",
    status: EntitlementStatus = EntitlementStatus.ACTIVE,
    start: datetime = T0,
    end: datetime | None = None,
    at: datetime | None = None,
    auto_renew: bool = True,
) -> SubscriptionSnapshot:
    return SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=at or start,
        original_transaction_id=original,
        transaction_id=tx or original,
        store_product_id=product,
        user_id=user,
        status=status,
        auto_renew=auto_renew,
        period_start=start,
        period_end=end or start + timedelta(days=30),
    )


async def claim(
    factory: UnitOfWorkFactory,
    event: Purchase | SubscriptionSnapshot,
    user: uuid.UUID,
    now: datetime = T0,
) -> PurchaseOutcome:
    async with factory() as uow:
        outcome = await claim_purchase(uow, event, user_id=user, catalog=CATALOG, now=now)
        await uow.commit()
    return outcome


def invariants(acc: object) -> None:
    from tests.unit.support import Account

    assert isinstance(acc, Account)
    assert (
        acc.balance
        == sum(e.amount for e in acc.entries)
        == sum(lot.remaining for lot in acc.lots.values())
    )
    assert acc.balance >= 0


# --- the repository ---------------------------------------------------------------------


async def test_transactions_are_unique_per_store(uow_factory: UnitOfWorkFactory) -> None:
    user = await open_account(uow_factory)
    tx = StoreTransaction(
        store=Store.GOOGLE,
        transaction_id=f"tok-{uuid.uuid4()}",
        user_id=user,
        original_transaction_id="o",
        product_id="credits_100",
        store_product_id="credits_100",
        kind=ProductKind.CONSUMABLE,
        credits=100,
        lot_id=None,
        status=TransactionStatus.GRANTED,
        purchased_at=T0,
        created_at=T0,
        acknowledged=False,
    )
    async with uow_factory() as uow:
        await uow.purchases.add_transaction(tx)
        with pytest.raises(DuplicateEntry):
            await uow.purchases.add_transaction(tx)
        # the same id at the other store is another transaction
        apple = msgspec.structs.replace(tx, store=Store.APPLE)
        await uow.purchases.add_transaction(apple)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.purchases.get_transaction(Store.GOOGLE, tx.transaction_id) == tx
        pending = await uow.purchases.unacknowledged(Store.GOOGLE, T0, limit=1000)
        assert tx in pending
        await uow.purchases.update_transaction(msgspec.structs.replace(tx, acknowledged=True))
        await uow.commit()
    async with uow_factory() as uow:
        pending = await uow.purchases.unacknowledged(Store.GOOGLE, T0, limit=1000)
        assert all(p.transaction_id != tx.transaction_id for p in pending)


async def test_a_transaction_keeps_the_price_the_store_stated(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Issue #20: the price (micro-units, a currency) read back as written, through an
    update too; a transaction without one reads back without one."""
    user = await open_account(uow_factory)
    priced = StoreTransaction(
        store=Store.APPLE,
        transaction_id=f"t-{uuid.uuid4()}",
        user_id=user,
        original_transaction_id="o",
        product_id="credits_100",
        store_product_id="app.genstudio.credits.100",
        kind=ProductKind.CONSUMABLE,
        credits=100,
        lot_id=None,
        status=TransactionStatus.GRANTED,
        purchased_at=T0,
        created_at=T0,
        environment="Production",
        price=Price(amount_micros=4_990_000, currency="USD"),
    )
    unpriced = msgspec.structs.replace(priced, transaction_id=f"t-{uuid.uuid4()}", price=None)
    async with uow_factory() as uow:
        await uow.purchases.add_transaction(priced)
        await uow.purchases.add_transaction(unpriced)
        await uow.commit()
    refunded = msgspec.structs.replace(priced, status=TransactionStatus.REFUNDED)
    async with uow_factory() as uow:
        assert await uow.purchases.get_transaction(Store.APPLE, priced.transaction_id) == priced
        assert await uow.purchases.get_transaction(Store.APPLE, unpriced.transaction_id) == unpriced
        await uow.purchases.update_transaction(refunded)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.purchases.get_transaction(Store.APPLE, priced.transaction_id) == refunded


async def test_a_transaction_keeps_what_its_refunds_gave_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Migration 0520: what partial refunds gave back of the price reads back as
    written, a later full refund's too, and none again once the refund is reversed."""
    user = await open_account(uow_factory)
    bought = StoreTransaction(
        store=Store.APPLE,
        transaction_id=f"t-{uuid.uuid4()}",
        user_id=user,
        original_transaction_id="o",
        product_id="credits_100",
        store_product_id="app.genstudio.credits.100",
        kind=ProductKind.CONSUMABLE,
        credits=300,
        lot_id=None,
        status=TransactionStatus.GRANTED,
        purchased_at=T0,
        created_at=T0,
        environment="Production",
        price=Price(amount_micros=14_970_000, currency="USD"),
    )
    async with uow_factory() as uow:
        await uow.purchases.add_transaction(bought)
        await uow.commit()
    third = msgspec.structs.replace(bought, clawed_back=99, refunded_micros=4_989_950)
    whole = msgspec.structs.replace(
        third, status=TransactionStatus.REFUNDED, refunded_micros=14_970_000
    )
    for state in (third, whole, msgspec.structs.replace(bought, refunded_micros=None)):
        async with uow_factory() as uow:
            await uow.purchases.update_transaction(state)
            await uow.commit()
        async with uow_factory() as uow:
            assert await uow.purchases.get_transaction(Store.APPLE, bought.transaction_id) == state


async def test_entitlements_upsert_and_grants_are_once_per_month(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    original = f"o-{uuid.uuid4()}"
    ent = Entitlement(
        store=Store.APPLE,
        original_transaction_id=original,
        user_id=user,
        product_id="pro_monthly",
        status=EntitlementStatus.ACTIVE,
        auto_renew=True,
        period_start=T0,
        period_end=T0 + timedelta(days=30),
        latest_transaction_id=original,
        event_at=T0,
        updated_at=T0,
        next_allowance_at=T0,
    )
    async with uow_factory() as uow:
        lot = await add_credits(
            uow,
            user_id=user,
            amount=5,
            kind=EntryKind.ALLOWANCE,
            reference="t",
            idempotency_key=str(uuid.uuid4()),
            now=T0,
        )
        assert lot.lot_id is not None
        grant = AllowanceGrant(
            store=Store.APPLE,
            original_transaction_id=original,
            month_start=T0,
            month_end=T0 + timedelta(days=30),
            user_id=user,
            transaction_id=original,
            product_id="pro_monthly",
            credits=5,
            lot_id=lot.lot_id,
            granted_at=T0,
        )
        await uow.purchases.add_grant(grant)
        await uow.purchases.save_entitlement(ent)
        with pytest.raises(DuplicateEntry):
            await uow.purchases.add_grant(grant)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.purchases.get_entitlement(Store.APPLE, original) == ent
        assert ent in await uow.purchases.due_entitlements(T0, limit=10_000)
        assert ent not in await uow.purchases.due_entitlements(
            T0 - timedelta(seconds=1), limit=10_000
        )
        changed = msgspec.structs.replace(ent, status=EntitlementStatus.EXPIRED)
        await uow.purchases.save_entitlement(changed)
        await uow.purchases.update_grant(msgspec.structs.replace(grant, clawed_back=5))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.purchases.entitlements_of(user) == [changed]
        assert ent not in await uow.purchases.due_entitlements(T0, limit=10_000)
        assert [g.clawed_back for g in await uow.purchases.grants(Store.APPLE, original)] == [5]


async def test_a_notification_is_recorded_once_even_when_delivered_concurrently(
    uow_factory: UnitOfWorkFactory,
) -> None:
    notification = str(uuid.uuid4())

    async def deliver() -> bool:
        async with uow_factory() as uow:
            first = await uow.purchases.record_notification(Store.APPLE, notification, "TEST", T0)
            await asyncio.sleep(0.01)
            await uow.commit()
        return first

    results = await asyncio.gather(*(deliver() for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]


async def test_an_uncommitted_notification_is_forgotten(uow_factory: UnitOfWorkFactory) -> None:
    notification = str(uuid.uuid4())
    async with uow_factory() as uow:
        assert await uow.purchases.record_notification(Store.GOOGLE, notification, "x", T0)
    async with uow_factory() as uow:
        assert await uow.purchases.record_notification(Store.GOOGLE, notification, "x", T0)


# --- the money rules, on every adapter ------------------------------------------------


async def test_a_pack_grants_once_and_belongs_to_its_first_owner(
    uow_factory: UnitOfWorkFactory,
) -> None:
    owner, other = await open_account(uow_factory), await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"
    first = await claim(uow_factory, pack(owner, tx), owner)
    again = await claim(uow_factory, pack(owner, tx), owner)
    assert (first.credits_granted, again.credits_granted, again.replayed) == (100, 0, True)
    with pytest.raises(PurchaseOwnedElsewhere):
        await claim(uow_factory, pack(other, tx), other)
    assert (await account(uow_factory, owner)).balance == 100
    assert (await account(uow_factory, other)).balance == 0


async def test_the_same_purchase_claimed_twenty_times_at_once_grants_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"
    outcomes = await asyncio.gather(*(claim(uow_factory, pack(user, tx), user) for _ in range(20)))
    assert sorted(o.credits_granted for o in outcomes) == [0] * 19 + [100]
    acc = await account(uow_factory, user)
    assert acc.balance == 100
    invariants(acc)


async def test_two_accounts_racing_for_one_transaction_one_wins(
    uow_factory: UnitOfWorkFactory,
) -> None:
    a, b = await open_account(uow_factory), await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"

    async def attempt(user: uuid.UUID) -> str:
        try:
            await claim(uow_factory, pack(user, tx), user)
        except PurchaseOwnedElsewhere:
            return "409"
        return "ok"

    results = await asyncio.gather(*(attempt(u) for u in (a, b, a, b)))
    balances = [(await account(uow_factory, u)).balance for u in (a, b)]
    assert sorted(balances) == [0, 100]
    assert results.count("409") == 2


async def test_a_refund_claws_back_only_what_is_unspent_and_never_below_zero(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    tx = f"t-{uuid.uuid4()}"
    await claim(uow_factory, pack(user, tx), user)
    async with uow_factory() as uow:
        await place_hold(uow, user_id=user, amount=70, reference="job", now=T0)
        await uow.commit()
    refund = Revocation(
        store=Store.APPLE,
        occurred_at=T0,
        transaction_id=tx,
        original_transaction_id=tx,
        reason=RevocationReason.REFUND,
    )
    async with uow_factory() as uow:
        outcome = await apply_store_event(uow, refund, catalog=CATALOG, now=T0)
        await uow.commit()
    assert outcome.credits == 30
    acc = await account(uow_factory, user)
    assert acc.balance == 0
    clawbacks = acc.of_kind(EntryKind.CLAWBACK)
    assert [e.amount for e in clawbacks] == [-30]
    invariants(acc)
    # a second refund of the same transaction takes nothing more
    async with uow_factory() as uow:
        again = await apply_store_event(uow, refund, catalog=CATALOG, now=T0)
        await uow.commit()
    assert again.credits == 0
    assert (await account(uow_factory, user)).balance == 0


async def test_a_subscription_grants_its_allowance_once_per_period_and_sets_the_profile(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    original = f"o-{uuid.uuid4()}"
    first = await claim(uow_factory, plan(user, original), user, now=T0 + timedelta(hours=1))
    replay = await claim(uow_factory, plan(user, original), user, now=T0 + timedelta(hours=2))
    assert (first.credits_granted, replay.credits_granted, replay.replayed) == (500, 0, True)
    async with uow_factory() as uow:
        profile = await uow.profiles.get(user)
    assert profile is not None
    assert profile.subscription_tier.value == "pro"
    assert profile.subscription_status == "active"
    assert profile.subscription_expires_at == T0 + timedelta(days=30)
    lots = (await account(uow_factory, user)).lots.values()
    assert [lot.expires_at for lot in lots] == [T0 + timedelta(days=30)]


async def test_a_yearly_plan_grants_month_by_month_through_the_scheduler(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await open_account(uow_factory)
    original = f"o-{uuid.uuid4()}"
    event = plan(
        user, original, product="app.genstudio.premium.yearly", end=T0 + timedelta(days=365)
    )
    await claim(uow_factory, event, user, now=T0)

    async def our_grants() -> list[AllowanceGrant]:
        # this plan's alone: the database may hold other tests' plans, due too
        async with uow_factory() as uow:
            return list(await uow.purchases.grants(Store.APPLE, original))

    counts = [len(await our_grants())]
    for month in range(1, 13):
        now = T0 + timedelta(days=31 * month - 15)
        await grant_due_allowances(uow_factory, catalog=CATALOG, now=now)
        counts.append(len(await our_grants()))
        # running it again in the same month grants nothing more
        await grant_due_allowances(uow_factory, catalog=CATALOG, now=now)
        assert len(await our_grants()) == counts[-1]
    # the purchase's month, then one month at a time as each falls due: twelve in all
    assert counts[0] == 1 and counts[-1] == 12
    assert all(b - a in (0, 1) for a, b in itertools.pairwise(counts))
    grants = await our_grants()
    assert len({g.month_start for g in grants}) == 12  # each month once
    assert all(g.month_end <= T0 + timedelta(days=365) for g in grants)
