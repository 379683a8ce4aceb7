"""One headline subscription: the profile (``GET /v1/me``, the queue's priority) and
``GET /v1/subscription`` name the same plan for a user holding several entitlements."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.core.model.purchases.entitlements import Entitlement, headline, plan_tier
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store, add_months
from genstudio.core.model.purchases.store_events import EntitlementStatus, SubscriptionSnapshot
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.subscriptions import subscription_of
from tests.unit.support import open_account, run

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
DAY = timedelta(days=1)


class Held(msgspec.Struct, frozen=True):
    """One subscription the user took: its plan (Apple's id), the store's status, its
    paid period (months from ``start``) and when its news was applied."""

    plan: str
    status: EntitlementStatus
    start: datetime
    months: int
    applied: datetime


def _snapshot(user: uuid.UUID, held: Held) -> SubscriptionSnapshot:
    original = f"{held.plan}-{held.start.isoformat()}"
    return SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=held.applied,
        original_transaction_id=original,
        transaction_id=f"{original}.1",
        store_product_id=held.plan,
        user_id=user,
        status=held.status,
        auto_renew=True,
        period_start=held.start,
        period_end=add_months(held.start, held.months),
    )


async def _both_views(
    holdings: list[Held],
) -> tuple[tuple[SubscriptionTier, datetime | None], tuple[str | None, str, datetime | None]]:
    """What ``GET /v1/me`` shows (the profile's tier and period end) and what
    ``GET /v1/subscription`` shows (plan, tier, period end) once every holding is applied
    in order."""
    factory = InMemoryUnitOfWorkFactory()
    user = await open_account(factory)
    for held in holdings:
        async with factory() as uow:
            event = _snapshot(user, held)
            await claim_purchase(
                uow, event, user_id=user, catalog=DEFAULT_PRODUCTS, now=held.applied
            )
            await uow.commit()
    async with factory() as uow:
        profile = await uow.profiles.get(user)
        view = await subscription_of(uow, user, DEFAULT_PRODUCTS)
    assert profile is not None
    me = (profile.subscription_tier, profile.subscription_expires_at)
    if view is None:
        return me, (None, SubscriptionTier.FREE.value, None)
    e = view.entitlement
    tier = view.product.tier if e.entitled and view.product.tier else SubscriptionTier.FREE
    return me, (view.product.id, tier.value, e.period_end)


PREMIUM_MONTHLY = "app.genstudio.premium.monthly"
PREMIUM_YEARLY = "app.genstudio.premium.yearly"
PRO_MONTHLY = "app.genstudio.pro.monthly"
PRO_YEARLY = "app.genstudio.pro.yearly"
ACTIVE, GRACE = EntitlementStatus.ACTIVE, EntitlementStatus.GRACE_PERIOD
NOW = T0 + 40 * DAY


@pytest.mark.parametrize(
    ("holdings", "plan", "tier"),
    [
        pytest.param(
            # a premium month the store's news says ran out, then a pro month
            [
                Held(PREMIUM_MONTHLY, ACTIVE, T0, 1, NOW - DAY),
                Held(PRO_MONTHLY, ACTIVE, NOW, 1, NOW),
            ],
            "pro_monthly",
            "pro",
            id="expired-premium-and-active-pro",
        ),
        pytest.param(
            # both paid up; the pro plan's period ends later, the premium one gives more
            [
                Held(PRO_YEARLY, ACTIVE, NOW - DAY, 12, NOW - DAY),
                Held(PREMIUM_MONTHLY, ACTIVE, NOW, 1, NOW),
            ],
            "premium_monthly",
            "premium",
            id="two-active-of-different-tiers",
        ),
        pytest.param(
            # a premium renewal failing (still entitled), and a pro month paid
            [
                Held(PREMIUM_MONTHLY, GRACE, T0 + 10 * DAY, 1, NOW),
                Held(PRO_YEARLY, ACTIVE, NOW, 12, NOW),
            ],
            "premium_monthly",
            "premium",
            id="premium-in-grace-and-active-pro",
        ),
        pytest.param(
            # nothing entitled: the latest news speaks (the pro month ran out later)
            [
                Held(PREMIUM_YEARLY, EntitlementStatus.REVOKED, T0, 12, T0 + DAY),
                Held(PRO_MONTHLY, ACTIVE, T0 + 5 * DAY, 1, NOW),
            ],
            "pro_monthly",
            "free",
            id="revoked-premium-and-expired-pro",
        ),
    ],
)
def test_the_profile_and_the_subscription_name_the_same_plan(
    holdings: list[Held], plan: str, tier: str
) -> None:
    (me_tier, me_expires), (sub_plan, sub_tier, sub_end) = run(_both_views(holdings))
    assert (sub_plan, sub_tier) == (plan, tier)
    assert me_tier.value == sub_tier
    assert me_expires == sub_end


def _entitlement(
    n: int, product: str, status: EntitlementStatus, end: int, changed: int
) -> Entitlement:
    at = T0 + changed * DAY
    return Entitlement(
        store=Store.APPLE if n % 2 else Store.GOOGLE,
        original_transaction_id=f"o{n}",
        user_id=uuid.UUID(int=1),
        product_id=product,
        status=status,
        auto_renew=True,
        period_start=T0,
        period_end=T0 + end * DAY,
        latest_transaction_id=f"t{n}",
        event_at=at,
        updated_at=at,
    )


entitlements = st.lists(
    st.builds(
        _entitlement,
        st.integers(0, 3),
        st.sampled_from([p.id for p in DEFAULT_PRODUCTS.all()] + ["withdrawn_plan"]),
        st.sampled_from(list(EntitlementStatus)),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    max_size=6,
    unique_by=lambda e: (e.store, e.original_transaction_id),
)


@given(entitlements, st.randoms(use_true_random=False))
def test_the_headline_is_the_best_entitled_plan_whatever_the_order(
    held: list[Entitlement], rnd: object
) -> None:
    best = headline(held, DEFAULT_PRODUCTS)
    shuffled = list(held)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert headline(shuffled, DEFAULT_PRODUCTS) == best
    if best is None:
        assert held == []
        return
    rank = [SubscriptionTier.FREE, SubscriptionTier.PRO, SubscriptionTier.PREMIUM]
    best_rank = rank.index(plan_tier(best, DEFAULT_PRODUCTS))
    assert all(rank.index(plan_tier(e, DEFAULT_PRODUCTS)) <= best_rank for e in held)
    assert best.entitled or not any(e.entitled for e in held)
