"""The business figures of ``GET /v1/admin/stats`` (issue #20), the same from the
in-memory reference and from SQL: one scenario of four users (one erased), jobs of every
kind, a like, purchases in both stores (a Sandbox one, refunds with credits clawed back
from a pack and from a subscription's allowance; Apple's priced in two currencies,
Google's pack unpriced) and a subscriber, read over the last day, week and month."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.business_stats import (
    WINDOWS,
    Activity,
    BusinessStats,
    ProductCounts,
    StoreTotals,
    Users,
)
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.media import MediaKind
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.purchases.entitlements import (
    AllowanceGrant,
    Entitlement,
    StoreTransaction,
    TransactionStatus,
)
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import ProductKind, Store
from genstudio.core.model.purchases.store_events import EntitlementStatus
from genstudio.core.model.social import Post, Visibility, new_share_id
from genstudio.core.services.credits import grant_credits
from genstudio.ports.unit_of_work import UnitOfWorkFactory

H = timedelta(hours=1)
D = timedelta(days=1)
PACK_USD = Price(amount_micros=4_990_000, currency="USD")
PLAN_USD = Price(amount_micros=9_990_000, currency="USD")
PACK_EUR = Price(amount_micros=1_000_000, currency="EUR")


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    base: datetime  # the scenario's times are before it
    a: uuid.UUID
    b: uuid.UUID
    c: uuid.UUID
    erased: uuid.UUID


def _job(user: uuid.UUID, kind: ModelKind, at: datetime, **fields: object) -> Job:
    return Job(
        id=uuid.uuid4(),
        user_id=user,
        kind=kind,
        model_id="flux-schnell",
        params=ImageParams(prompt="a fox"),
        cost=1,
        hold_id=None,
        status=JobStatus.SUCCEEDED,
        created_at=at,
        updated_at=at,
        **fields,  # type: ignore[arg-type]
    )


def _tx(
    store: Store, user: uuid.UUID, product: str, at: datetime, **fields: object
) -> StoreTransaction:
    values: dict[str, object] = {
        "store": store,
        "transaction_id": f"t-{uuid.uuid4()}",
        "user_id": user,
        "original_transaction_id": f"o-{uuid.uuid4()}",
        "product_id": product,
        "store_product_id": f"com.acme.{product}",
        "kind": ProductKind.CONSUMABLE,
        "credits": 100,
        "lot_id": None,
        "status": TransactionStatus.GRANTED,
        "purchased_at": at,
        "created_at": at,
        "environment": "Production" if store is Store.APPLE else None,
    }
    values.update(fields)
    return StoreTransaction(**values)  # type: ignore[arg-type]


async def seed(factory: UnitOfWorkFactory) -> Scenario:
    """What the module docstring says; the figures it gives are in ``expected``."""
    base = datetime.now(UTC)
    a, b, c, erased = (uuid.uuid4() for _ in range(4))
    allowance = await grant_credits(
        factory, user_id=a, amount=40, reference="allowance", idempotency_key="a", now=base
    )
    async with factory() as uow:
        for user in (b, c, erased):
            await uow.profiles.ensure(user, None)
        first = _job(a, ModelKind.IMAGE, base - 2 * H)
        for job in (
            first,
            _job(a, ModelKind.IMAGE, base - H, rerun_of=first.id),  # an operator's re-run
            _job(a, ModelKind.EDIT, base - 3 * D),
            _job(a, ModelKind.TRAINING, base - 2 * D),
            _job(a, ModelKind.VIDEO, base - 20 * D),
            _job(b, ModelKind.IMAGE, base - 5 * D),
            _job(erased, ModelKind.IMAGE, base - H),
        ):
            await uow.jobs.add(job)
        post = Post(
            id=uuid.uuid4(),
            user_id=a,
            asset_id=uuid.uuid4(),
            media_kind=MediaKind.IMAGE,
            storage_key=f"{a}/{uuid.uuid4()}.png",
            poster_key=None,
            content_type="image/png",
            width=512,
            height=512,
            duration_seconds=None,
            caption="a fox",
            visibility=Visibility.PUBLIC,
            share_id=new_share_id(),
            created_at=base - 10 * D,
            updated_at=base - 10 * D,
        )
        await uow.social.add_post(post)
        await uow.social.like(post.id, c, base - H / 2)
        refunded_plan = _tx(
            Store.APPLE,
            a,
            "pro_monthly",
            base - 15 * D,
            kind=ProductKind.SUBSCRIPTION,
            credits=0,
            status=TransactionStatus.REFUNDED,
            revocation_event_at=base - 2 * H,
            price=PLAN_USD,
        )
        for tx in (
            _tx(Store.APPLE, a, "credits_100", base - 2 * D, price=PACK_USD),
            _tx(
                Store.APPLE,
                b,
                "pro_monthly",
                base - 6 * H,
                kind=ProductKind.SUBSCRIPTION,
                credits=0,
                price=PLAN_USD,
            ),
            _tx(Store.APPLE, c, "credits_100", base - H, environment="Sandbox", price=PACK_USD),
            _tx(Store.APPLE, erased, "credits_100", base - H, price=PACK_EUR),
            refunded_plan,
            _tx(
                Store.GOOGLE,
                b,
                "credits_250",
                base - 20 * D,
                credits=250,
                status=TransactionStatus.REFUNDED,
                revocation_event_at=base - 20 * H,
                clawed_back=60,
            ),
        ):
            await uow.purchases.add_transaction(tx)
        await uow.purchases.save_entitlement(
            Entitlement(
                store=Store.APPLE,
                original_transaction_id=refunded_plan.original_transaction_id,
                user_id=a,
                product_id="pro_monthly",
                status=EntitlementStatus.REFUNDED,  # not a subscriber
                auto_renew=False,
                period_start=base - 15 * D,
                period_end=base + 15 * D,
                latest_transaction_id=refunded_plan.transaction_id,
                event_at=base - 2 * H,
                updated_at=base - 2 * H,
            )
        )
        assert allowance.lot_id is not None
        await uow.purchases.add_grant(
            AllowanceGrant(
                store=Store.APPLE,
                original_transaction_id=refunded_plan.original_transaction_id,
                month_start=base - 15 * D,
                month_end=base + 15 * D,
                user_id=a,
                transaction_id=refunded_plan.transaction_id,
                product_id="pro_monthly",
                credits=40,
                lot_id=allowance.lot_id,
                granted_at=base - 15 * D,
                clawed_back=40,
            )
        )
        await uow.purchases.save_entitlement(
            Entitlement(
                store=Store.APPLE,
                original_transaction_id=f"o-{b}",
                user_id=b,
                product_id="pro_monthly",
                status=EntitlementStatus.ACTIVE,
                auto_renew=True,
                period_start=base - 6 * H,
                period_end=base + 29 * D,
                latest_transaction_id=f"t-{b}",
                event_at=base - 6 * H,
                updated_at=base - 6 * H,
            )
        )
        await uow.commit()
    async with factory() as uow:
        await uow.ledger.lock_account(erased)
        await uow.safety.erase_account(erased, base - H / 4)
        await uow.commit()
    return Scenario(base=base, a=a, b=b, c=c, erased=erased)


def expected(now: datetime) -> BusinessStats:
    """The scenario's figures read at ``now`` (a little after ``Scenario.base``)."""

    def activity(window: str, new: int, gens: int, users: int, kinds: dict[str, int]) -> Activity:
        paying = {"day": 1, "week": 2, "month": 2}[window]
        return Activity(
            window=window,
            since=now - WINDOWS[window],
            active_users=3,
            new_users=new,
            generating_users=users,
            generations=gens,
            jobs_by_kind=kinds,
            paying_users=paying,
        )

    def apple(window: str, bought: int, plans: int, credits: int, usd: int) -> StoreTotals:
        packs = {"day": 1, "week": 2}.get(window, 2)
        return StoreTotals(
            store="apple",
            window=window,
            purchases=bought,
            subscription_payments=plans,
            credits_sold=credits,
            refunds=1,
            credits_clawed_back=40,
            sandbox_purchases=1,
            by_product={
                "credits_100": ProductCounts(purchases=packs),
                "pro_monthly": ProductCounts(purchases=plans, refunds=1),
            },
            # every purchase counted is priced; the Sandbox one's price is not revenue
            revenue_micros={"EUR": 1_000_000, "USD": usd},
            refunded_micros={"USD": 9_990_000},
            priced_purchases=bought,
            unpriced_purchases=0,
        )

    def google(window: str, bought: int) -> StoreTotals:
        return StoreTotals(
            store="google",
            window=window,
            purchases=bought,
            subscription_payments=0,
            credits_sold=250 * bought,
            refunds=1,
            credits_clawed_back=60,
            sandbox_purchases=0,
            by_product={"credits_250": ProductCounts(purchases=bought, refunds=1)},
            # Google's packs state no price: counted, not summed
            revenue_micros={},
            refunded_micros={},
            priced_purchases=0,
            unpriced_purchases=bought,
        )

    return BusinessStats(
        at=now,
        users=Users(total=3, paying=2, subscribers=1),
        activity=[
            activity("day", 3, 1, 1, {"image": 1}),
            activity("week", 3, 3, 2, {"edit": 1, "image": 2, "training": 1}),
            activity("month", 3, 4, 2, {"edit": 1, "image": 2, "training": 1, "video": 1}),
        ],
        stores=[
            apple("day", 2, 1, 100, 9_990_000),
            apple("week", 3, 1, 200, 14_980_000),
            apple("month", 4, 2, 200, 24_970_000),
            apple("all", 4, 2, 200, 24_970_000),
            google("day", 0),
            google("week", 0),
            google("month", 1),
            google("all", 1),
        ],
    )


@pytest.fixture(params=["memory", "postgres"])
async def factory(request: pytest.FixtureRequest) -> AsyncIterator[UnitOfWorkFactory]:
    """A store of its own: the figures count everything in it."""
    if request.param == "memory":
        yield InMemoryUnitOfWorkFactory()
        return
    from genstudio.adapters.supabase.db import make_engine
    from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory

    engine = make_engine(request.getfixturevalue("fresh_db"), pool_size=2)
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        await engine.dispose()


async def test_the_figures_count_users_generations_conversion_and_each_stores_books(
    factory: UnitOfWorkFactory,
) -> None:
    scenario = await seed(factory)
    now = scenario.base + timedelta(minutes=1)
    async with factory() as uow:
        stats = await uow.business_stats.business_stats(now=now, windows=WINDOWS)
    want = expected(now)
    assert stats.users == want.users
    assert stats.users.conversion == pytest.approx(2 / 3)
    assert stats.activity == want.activity
    assert [a.generations_per_user for a in stats.activity] == [1.0, 1.5, 2.0]
    assert stats.stores == want.stores
    assert stats == want


async def test_an_empty_store_has_no_users_no_rates_and_no_stores(
    factory: UnitOfWorkFactory,
) -> None:
    now = datetime.now(UTC)
    async with factory() as uow:
        stats = await uow.business_stats.business_stats(now=now, windows=WINDOWS)
    assert stats.users == Users(total=0, paying=0, subscribers=0)
    assert stats.users.conversion is None
    assert [a.window for a in stats.activity] == ["day", "week", "month"]
    assert all(a.active_users == a.generations == 0 for a in stats.activity)
    assert all(a.generations_per_user is None and a.jobs_by_kind == {} for a in stats.activity)
    assert stats.stores == []


async def test_partial_refunds_count_as_refunds_with_the_money_they_gave_back(
    factory: UnitOfWorkFactory,
) -> None:
    """A pack refunded in part (still granted for the rest) is a refund, with the
    credits it clawed back and the refunded share of its price; refunded in full after
    that, its whole price, once; a prorated subscription payment its share; a row from
    before migration 0520 refunded in full its price; a revocation no money; a
    refund reversed nothing; an unpriced partial refund (Google's pack) a refund
    without money. Purchases and their prices are untouched by refunds."""
    base = datetime.now(UTC)
    user = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user, None)
        three = Price(amount_micros=14_970_000, currency="USD")
        for tx in (
            # 1 of 3 items (Apple: 33.333%): a third of 14.97, to the micro below
            _tx(
                Store.APPLE,
                user,
                "credits_100",
                base - H,
                credits=300,
                price=three,
                clawed_back=99,
                refunded_micros=three.part(33333, 100_000),
                revocation_event_at=base - H / 2,
            ),
            # refunded in part, then in full: the whole price
            _tx(
                Store.APPLE,
                user,
                "credits_100",
                base - H,
                credits=300,
                price=three,
                status=TransactionStatus.REFUNDED,
                clawed_back=300,
                refunded_micros=14_970_000,
                revocation_event_at=base - H / 2,
            ),
            # refunded in full before refunds were recorded: its price, as before
            _tx(
                Store.APPLE,
                user,
                "credits_100",
                base - H,
                price=PACK_USD,
                status=TransactionStatus.REFUNDED,
                clawed_back=100,
                revocation_event_at=base - H / 2,
            ),
            # a prorated refund of a plan's payment: half of it
            _tx(
                Store.APPLE,
                user,
                "pro_monthly",
                base - H,
                kind=ProductKind.SUBSCRIPTION,
                credits=0,
                price=PLAN_USD,
                status=TransactionStatus.REFUNDED,
                refunded_micros=4_995_000,
                revocation_event_at=base - H / 2,
            ),
            # family sharing ended: revoked, no money back
            _tx(
                Store.APPLE,
                user,
                "credits_100",
                base - H,
                price=PACK_EUR,
                status=TransactionStatus.REVOKED,
                revocation_event_at=base - H / 2,
            ),
            # a partial refund reversed: no refund at all any more
            _tx(
                Store.APPLE,
                user,
                "credits_100",
                base - H,
                price=PACK_EUR,
                revocation_event_at=base - H / 2,
            ),
            # Google: 1 of 3 items voided, the pack unpriced
            _tx(
                Store.GOOGLE,
                user,
                "credits_100",
                base - H,
                credits=300,
                clawed_back=100,
                revocation_event_at=base - H / 2,
            ),
        ):
            await uow.purchases.add_transaction(tx)
        await uow.commit()
    async with factory() as uow:
        stats = await uow.business_stats.business_stats(now=base, windows=WINDOWS)
    apple = next(s for s in stats.stores if (s.store, s.window) == ("apple", "day"))
    assert (apple.purchases, apple.refunds, apple.credits_clawed_back) == (6, 5, 499)
    assert apple.by_product == {
        "credits_100": ProductCounts(purchases=5, refunds=4),
        "pro_monthly": ProductCounts(purchases=1, refunds=1),
    }
    assert apple.refunded_micros == {"USD": 4_989_950 + 14_970_000 + 4_990_000 + 4_995_000}
    assert apple.revenue_micros == {"EUR": 2_000_000, "USD": 2 * 14_970_000 + 4_990_000 + 9_990_000}
    assert (apple.priced_purchases, apple.unpriced_purchases) == (6, 0)
    google = next(s for s in stats.stores if (s.store, s.window) == ("google", "all"))
    assert (google.refunds, google.credits_clawed_back) == (1, 100)
    assert google.refunded_micros == {} and google.revenue_micros == {}
    assert (google.priced_purchases, google.unpriced_purchases) == (0, 1)
