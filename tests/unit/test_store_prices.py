"""The price a store states (issue #20): read from each store's data into one domain
value (micro-units and an ISO 4217 code), recorded with the purchase or payment it
belongs to, and never a reason for a purchase to fail. On the memory adapters."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from genstudio.adapters.iap_google.store import _price as google_price
from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.purchases.entitlements import TransactionStatus
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store, add_months
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Purchase,
    Revocation,
    RevocationReason,
    SubscriptionSnapshot,
)
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from tests.unit.support import open_account

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
USD = Price(amount_micros=9_990_000, currency="USD")


def test_a_price_is_a_non_negative_amount_in_a_currency_code() -> None:
    assert Price.of(4_990_000, "USD") == Price(amount_micros=4_990_000, currency="USD")
    assert Price.of(0, "EUR") == Price(amount_micros=0, currency="EUR")
    for amount, currency in ((-1, "USD"), (1, "usd"), (1, "US"), (1, None), (None, "USD")):
        assert Price.of(amount, currency) is None
    assert Price.of(True, "USD") is None
    with pytest.raises(InvalidInput):
        Price(amount_micros=-1, currency="USD")


def _item(**fields: Any) -> dict[str, Any]:
    plan = {"autoRenewEnabled": True, "recurringPrice": {"currencyCode": "EUR", "units": "12"}}
    return {"productId": "pro_monthly", "autoRenewingPlan": plan, **fields}


def test_a_google_line_item_is_priced_at_its_recurring_price_where_that_was_charged() -> None:
    eur = _item()
    eur["autoRenewingPlan"]["recurringPrice"]["nanos"] = 490_000_000
    assert google_price(eur) == Price(amount_micros=12_490_000, currency="EUR")
    assert google_price(_item()) == Price(amount_micros=12_000_000, currency="EUR")
    assert google_price(_item(offerPhase={"basePrice": {}})) == Price(
        amount_micros=12_000_000, currency="EUR"
    )
    # a free trial charged nothing; an introductory or prorated phase not the list price
    assert google_price(_item(offerPhase={"freeTrial": {}})) == Price(
        amount_micros=0, currency="EUR"
    )
    assert google_price(_item(offerPhase={"introductoryPrice": {}})) is None
    assert google_price(_item(offerPhase={"prorationPeriod": {}})) is None
    # a prepaid plan, or nonsense: unpriced
    assert google_price({"productId": "pro_monthly", "prepaidPlan": {}}) is None
    broken = _item()
    broken["autoRenewingPlan"]["recurringPrice"]["units"] = "twelve"
    assert google_price(broken) is None


def _snapshot(
    user: uuid.UUID, transaction_id: str, start: datetime, **fields: Any
) -> SubscriptionSnapshot:
    values: dict[str, Any] = {
        "store": Store.GOOGLE,
        "occurred_at": start,
        "original_transaction_id": "token-1",
        "transaction_id": transaction_id,
        "store_product_id": "pro_monthly",
        "user_id": user,
        "status": EntitlementStatus.ACTIVE,
        "auto_renew": True,
        "period_start": start,
        "period_end": add_months(start, 1),
    }
    return SubscriptionSnapshot(**(values | fields))


async def test_packs_and_payments_record_the_stated_price_once() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user = await open_account(factory)
    pack = Purchase(
        store=Store.APPLE,
        occurred_at=T0,
        transaction_id="t-pack",
        original_transaction_id="t-pack",
        store_product_id="app.genstudio.credits.100",
        user_id=user,
        purchased_at=T0,
        price=Price(amount_micros=4_990_000, currency="USD"),
    )
    plan = _snapshot(user, "GPA.1", T0, price=USD)
    for _ in range(2):  # a replay records nothing new
        for event in (pack, plan):
            async with factory() as uow:
                await claim_purchase(uow, event, user_id=user, catalog=DEFAULT_PRODUCTS, now=T0)
                await uow.commit()
    async with factory() as uow:
        recorded = await uow.purchases.get_transaction(Store.APPLE, "t-pack")
        payment = await uow.purchases.get_transaction(Store.GOOGLE, "GPA.1")
        stats = await uow.business_stats.business_stats(
            now=T0 + timedelta(minutes=1), windows={"day": timedelta(days=1)}
        )
    assert recorded is not None and recorded.price == pack.price
    assert payment is not None and payment.price == USD
    google = next(s for s in stats.stores if (s.store, s.window) == ("google", "day"))
    assert google.revenue_micros == {"USD": 9_990_000} and google.priced_purchases == 1


async def test_a_renewal_refunded_before_its_news_gets_its_price_from_the_news() -> None:
    """Refund news came first (Play retries a renewal's news for days): the payment is
    recorded refunded and unpriced; its own news, when it comes, says what it cost."""
    factory = InMemoryUnitOfWorkFactory()
    user = await open_account(factory)
    async with factory() as uow:
        await claim_purchase(
            uow,
            _snapshot(user, "GPA.1", T0, price=USD),
            user_id=user,
            catalog=DEFAULT_PRODUCTS,
            now=T0,
        )
        await uow.commit()
    renewed_at = add_months(T0, 1)
    refund = Revocation(
        store=Store.GOOGLE,
        occurred_at=renewed_at + timedelta(hours=1),
        transaction_id="GPA.1..0",
        original_transaction_id="token-1",
        reason=RevocationReason.REFUND,
    )
    await handle_notification(
        factory,
        store=Store.GOOGLE,
        notification_id="n-refund",
        kind="voided",
        events=[refund],
        catalog=DEFAULT_PRODUCTS,
        now=renewed_at + timedelta(hours=1),
    )
    async with factory() as uow:
        early = await uow.purchases.get_transaction(Store.GOOGLE, "GPA.1..0")
    assert early is not None and early.status is TransactionStatus.REFUNDED
    assert early.price is None

    renewal = _snapshot(
        user, "GPA.1..0", renewed_at, price=USD, occurred_at=renewed_at + timedelta(hours=2)
    )
    await handle_notification(
        factory,
        store=Store.GOOGLE,
        notification_id="n-renewal",
        kind="subscription:2",
        events=[renewal],
        catalog=DEFAULT_PRODUCTS,
        now=renewed_at + timedelta(hours=2),
    )
    async with factory() as uow:
        late = await uow.purchases.get_transaction(Store.GOOGLE, "GPA.1..0")
    assert late is not None and late.price == USD
    assert late.status is TransactionStatus.REFUNDED
