"""The pure rules of products and entitlements (core/products.py, core/entitlements.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.purchases.entitlements import (
    apply_snapshot,
    derive_status,
    new_entitlement,
)
from genstudio.core.model.purchases.products import (
    DEFAULT_PRODUCTS,
    Store,
    add_months,
    parse_product_ids,
)
from genstudio.core.model.purchases.store_events import EntitlementStatus, SubscriptionSnapshot

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
    resubscribed = msgspec.structs.replace(resubscribed, transaction_id="t2")  # a new payment
    after = apply_snapshot(refunded, resubscribed, plan, T0 + timedelta(days=40))
    assert after is not None and after.status is EntitlementStatus.ACTIVE


def google(
    status: EntitlementStatus = EntitlementStatus.ACTIVE,
    *,
    at: datetime = T0,
    order: str = "GPA.1",
    expiry: datetime | None = None,
) -> SubscriptionSnapshot:
    """As the Google adapter reads Play: no period start, the paying order's id."""
    return msgspec.structs.replace(
        snap(status, at=at, start=None, end=expiry or add_months(T0, 1)), transaction_id=order
    )


def test_a_moved_expiry_without_a_new_payment_keeps_the_period_and_its_months() -> None:
    plan = product()
    ent = new_entitlement(google(), plan, USER, T0)
    month = ent.months(plan)
    # the renewal fails: Play moves expiryTime to the grace period's end, same paid order
    grace_end = add_months(T0, 1) + timedelta(days=7)
    later = add_months(T0, 1) + timedelta(hours=1)
    graced = apply_snapshot(
        ent, google(EntitlementStatus.GRACE_PERIOD, at=later, expiry=grace_end), plan, later
    )
    assert graced is not None and graced.entitled
    assert (graced.period_start, graced.period_end) == (ent.period_start, grace_end)
    assert graced.months(plan) == month  # no month starts in the grace period
    assert graced.current_month(plan, later) is None
    # a deferral: the same, whatever the status
    deferred = apply_snapshot(ent, google(expiry=grace_end, at=later), plan, later)
    assert deferred is not None and deferred.period_start == ent.period_start
    # the renewal is paid at last (a new order): a new period, its month
    renewed = apply_snapshot(
        graced, google(at=later, order="GPA.1..0", expiry=add_months(T0, 2)), plan, later
    )
    assert renewed is not None and renewed.period_start == add_months(add_months(T0, 2), -1)
    assert renewed.current_month(plan, later) is not None


def test_a_refunded_payment_stays_refunded_when_its_expiry_moves() -> None:
    plan = product()
    ent = new_entitlement(google(), plan, USER, T0)
    refunded = msgspec.structs.replace(ent, status=EntitlementStatus.REFUNDED)
    moved = google(at=T0 + timedelta(days=1), expiry=add_months(T0, 1) + timedelta(days=5))
    assert apply_snapshot(refunded, moved, plan, T0 + timedelta(days=1)) is None


def test_a_replaced_subscription_stays_replaced_whatever_the_store_says() -> None:
    plan = product()
    ent = new_entitlement(google(), plan, USER, T0)
    replaced = msgspec.structs.replace(ent, status=EntitlementStatus.REPLACED)
    assert not replaced.entitled
    later = T0 + timedelta(days=3)
    for news in (
        google(at=later),  # Play still reads the old token as active
        google(at=later, order="GPA.1..0", expiry=add_months(T0, 2)),
    ):
        assert apply_snapshot(replaced, news, plan, later) is None
    # never sent by an adapter; read as over
    assert derive_status(google(EntitlementStatus.REPLACED), T0) is EntitlementStatus.EXPIRED


def test_apple_periods_still_come_from_the_transaction() -> None:
    plan = product()
    ent = new_entitlement(snap(), plan, USER, T0)
    renewal = snap(at=T0 + timedelta(days=31), start=add_months(T0, 1), end=add_months(T0, 2))
    renewal = msgspec.structs.replace(renewal, transaction_id="t2")
    after = apply_snapshot(ent, renewal, plan, T0 + timedelta(days=31))
    assert after is not None
    assert (after.period_start, after.period_end) == (add_months(T0, 1), add_months(T0, 2))
