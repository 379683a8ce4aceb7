"""The pure rules of products and entitlements (core/products.py, core/entitlements.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from core.entitlements import apply_snapshot, derive_status, new_entitlement
from core.errors import InvalidInput
from core.products import DEFAULT_PRODUCTS, Store, add_months, parse_product_ids
from core.store_events import EntitlementStatus, SubscriptionSnapshot

T0 = datetime(2026, 1, 31, 12, tzinfo=UTC)
USER = uuid.uuid4()


def snap(
    status: EntitlementStatus = EntitlementStatus.ACTIVE,
    *,
    at: datetime = T0,
    start: datetime | None = T0,
    end: datetime | None = None,
    auto_renew: bool = True,
    product: str = "app.genstudio.pro.monthly",
) -> SubscriptionSnapshot:
    return SubscriptionSnapshot(
        store=Store.APPLE,
        occurred_at=at,
        original_transaction_id="o1",
        transaction_id="t1",
        store_product_id=product,
        user_id=USER,
        status=status,
        auto_renew=auto_renew,
        period_start=start,
        period_end=end or add_months(T0, 1),
    )


def product(store_id: str = "app.genstudio.pro.monthly"):  # type: ignore[no-untyped-def]
    found = DEFAULT_PRODUCTS.for_store(Store.APPLE, store_id)
    assert found is not None
    return found


def test_months_are_calendar_months_clamped_to_the_month_end() -> None:
    assert add_months(T0, 1) == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert add_months(T0, 2) == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert add_months(T0, -12) == datetime(2025, 1, 31, 12, tzinfo=UTC)


def test_store_ids_come_from_configuration_and_unknown_ones_are_refused() -> None:
    catalog = DEFAULT_PRODUCTS.with_store_ids(
        apple=parse_product_ids("credits_100=com.acme.c100, pro_monthly=com.acme.pro")
    )
    c100 = catalog.for_store(Store.APPLE, "com.acme.c100")
    assert c100 is not None and c100.credits == 100
    assert catalog.for_store(Store.APPLE, "app.genstudio.credits.100") is None
    with pytest.raises(InvalidInput):
        catalog.require_for_store(Store.GOOGLE, "nope")
    with pytest.raises(InvalidInput):
        parse_product_ids("credits_100")
    with pytest.raises(InvalidInput):
        DEFAULT_PRODUCTS.with_store_ids(google={"no_such_product": "x"})


def test_a_yearly_plan_is_cut_into_twelve_allowance_months() -> None:
    plan = product("app.genstudio.premium.yearly")
    ent = new_entitlement(snap(end=add_months(T0, 12)), plan, USER, T0)
    months = ent.months(plan)
    assert len(months) == 12
    assert months[0] == (T0, add_months(T0, 1))
    assert months[-1][1] == add_months(T0, 12)
    assert ent.current_month(plan, add_months(T0, 5) + timedelta(days=1)) == months[5]
    assert ent.following_month_start(plan, T0 + timedelta(days=1)) == months[1][0]


def test_auto_renew_off_is_still_entitled_and_a_past_period_is_expired() -> None:
    assert derive_status(snap(auto_renew=False), T0) is EntitlementStatus.AUTO_RENEW_OFF
    later = add_months(T0, 2)
    assert derive_status(snap(), later) is EntitlementStatus.EXPIRED
    assert derive_status(snap(EntitlementStatus.GRACE_PERIOD), later) is (
        EntitlementStatus.GRACE_PERIOD
    )


def test_stale_news_changes_nothing() -> None:
    plan = product()
    ent = new_entitlement(snap(at=T0 + timedelta(hours=1)), plan, USER, T0)
    assert apply_snapshot(ent, snap(EntitlementStatus.EXPIRED, at=T0), plan, T0) is None


def test_a_refunded_period_is_not_brought_back_by_the_stores_older_view() -> None:
    plan = product()
    ent = new_entitlement(snap(), plan, USER, T0)
    refunded = ent.__class__(
        **{f: getattr(ent, f) for f in ent.__struct_fields__}
        | {"status": EntitlementStatus.REFUNDED}
    )
    same_period = snap(at=T0 + timedelta(minutes=5))
    assert apply_snapshot(refunded, same_period, plan, T0) is None
    resubscribed = snap(
        at=T0 + timedelta(days=40),
        start=add_months(T0, 1),
        end=add_months(T0, 2),
    )
    after = apply_snapshot(refunded, resubscribed, plan, T0 + timedelta(days=40))
    assert after is not None and after.status is EntitlementStatus.ACTIVE
