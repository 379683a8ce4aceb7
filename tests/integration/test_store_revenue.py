"""Revenue and refunds per store in ``GET /v1/admin/stats`` (issue #20), end to end: the
HTTP API in-process on a Postgres of its own, the stores' stand-ins serving what the
real stores serve (Apple's signed ``price``/``currency``, Play's ``recurringPrice``),
purchases redeemed and news pushed through the API, the figures read by an operator.
A replay or a redelivery never counts twice; a refund shows as refunded money."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dependency_injector import providers
from litestar.testing import AsyncTestClient

from genstudio.adapters.memory import FakeClock
from genstudio.adapters.supabase.auth import mint_token
from genstudio.core.model.purchases.products import add_months
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.iap_settings import AppleSettings
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.standins.apple import APP_APPLE_ID, BUNDLE_ID, AppleSigner, notification, refunded
from tests.standins.apple import transaction as apple_transaction
from tests.standins.google_play import GooglePlayStandIn, google_settings

pytestmark = pytest.mark.postgres

SECRET = "revenue-integration-" + "r" * 32
AUDIENCE = "https://api.genstudio.test/v1/webhooks/google"
APPLE_PACK = "app.genstudio.credits.100"
SUBSCRIPTION_RENEWED = 2


class Stores:
    def __init__(
        self,
        client: AsyncTestClient[Any],
        signer: AppleSigner,
        play: GooglePlayStandIn,
        clock: FakeClock,
        db: str,
    ) -> None:
        self.client, self.signer, self.play, self.clock, self.db = (
            client,
            signer,
            play,
            clock,
            db,
        )

    @staticmethod
    def auth(user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}

    async def apple(self, user: uuid.UUID, tx: dict[str, Any]) -> Any:
        return await self.client.post(
            "/v1/purchases/apple",
            json={"signedTransaction": self.signer.sign(tx)},
            headers=self.auth(user),
        )

    async def apple_news(self, kind: str, tx: dict[str, Any], at: datetime) -> list[str]:
        payload, _ = notification(self.signer, kind, tx=tx, signed=at, environment="Production")
        response = await self.client.post("/v1/webhooks/apple", json={"signedPayload": payload})
        assert response.status_code == 200, response.text
        actions: list[str] = response.json()["actions"]
        return actions

    async def google(self, user: uuid.UUID, product: str, token: str) -> Any:
        return await self.client.post(
            "/v1/purchases/google",
            json={"productId": product, "purchaseToken": token},
            headers=self.auth(user),
        )

    async def rtdn(self, token: str, kind: int, product: str, message_id: str) -> None:
        body = self.play.push_body(
            {
                "subscriptionNotification": {
                    "version": "1.0",
                    "notificationType": kind,
                    "purchaseToken": token,
                    "subscriptionId": product,
                }
            },
            message_id,
        )
        response = await self.client.post(
            "/v1/webhooks/google",
            content=body,
            headers={
                "Authorization": f"Bearer {self.play.push_token(AUDIENCE)}",
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200, response.text

    async def totals(self, store: str, window: str = "all") -> dict[str, Any]:
        operator = mint_token(SECRET, user_id=uuid.uuid4(), role="service_role")
        response = await self.client.get(
            "/v1/admin/stats", headers={"Authorization": f"Bearer {operator}"}
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = next(
            s for s in response.json()["stores"] if (s["store"], s["window"]) == (store, window)
        )
        return found

    def price_of(self, store: str, transaction_id: str) -> tuple[int | None, str | None]:
        with psycopg.connect(self.db) as conn:
            row = conn.execute(
                "SELECT price_micros, currency FROM store_transactions"
                " WHERE store = %s AND transaction_id = %s",
                (store, transaction_id),
            ).fetchone()
        assert row is not None
        return row[0], row[1]


@pytest.fixture
def play() -> Iterator[GooglePlayStandIn]:
    with GooglePlayStandIn() as standin:
        yield standin


@pytest.fixture
async def stores(fresh_db: str, tmp_path: Path, play: GooglePlayStandIn) -> AsyncIterator[Stores]:
    """Apple in Production (a Sandbox purchase is honoured, and counted apart) and Google
    Play, on a database of their own: the figures count everything in it."""
    signer = AppleSigner()
    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        apple=AppleSettings(
            root_certificates=signer.root_b64,
            bundle_id=BUNDLE_ID,
            app_apple_id=APP_APPLE_ID,
            environment="Production",
            online_checks=False,
        ),
        google=google_settings(play, audience=AUDIENCE),
    )

    def configure(container: AppContainer) -> None:
        container.clock.override(providers.Object(clock))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield Stores(client, signer, play, clock, fresh_db)


async def test_an_apple_pack_records_its_price_once_and_its_refund_shows_as_refunded(
    stores: Stores,
) -> None:
    user = uuid.uuid4()
    # Apple signs 4990 milliunits of USD (4.99): recorded as 4 990 000 micros
    tx = apple_transaction(product_id=APPLE_PACK, user=user, environment="Production")
    assert (tx["price"], tx["currency"]) == (4990, "USD")
    first = await stores.apple(user, tx)
    assert first.status_code == 200 and first.json()["creditsGranted"] == 100, first.text
    assert stores.price_of("apple", tx["transactionId"]) == (4_990_000, "USD")
    # posted again, and twenty times at once: one purchase, one price
    again = await asyncio.gather(*(stores.apple(user, tx) for _ in range(20)))
    assert {r.status_code for r in again} == {200}
    assert all(r.json()["creditsGranted"] == 0 for r in again)
    # a Sandbox purchase (App Review) is honoured, never revenue
    sandbox = apple_transaction(product_id=APPLE_PACK, user=user, environment="Sandbox")
    assert (await stores.apple(user, sandbox)).status_code == 200

    bought = await stores.totals("apple", "day")
    assert bought["purchases"] == 1 and bought["sandboxPurchases"] == 1
    assert bought["revenueMicros"] == {"USD": 4_990_000}
    assert (bought["pricedPurchases"], bought["unpricedPurchases"]) == (1, 0)
    assert bought["refunds"] == 0 and bought["refundedMicros"] == {}

    at = stores.clock.now() + timedelta(minutes=5)
    assert await stores.apple_news("REFUND", refunded(tx, at=at), at) == ["clawed_back:refunded"]
    # the same refund news again (another notification id): counted once
    assert await stores.apple_news("REFUND", refunded(tx, at=at), at) == ["stale"]
    stores.clock.advance(600)  # the figures are read after the refund happened
    after = await stores.totals("apple", "day")
    assert after["refunds"] == 1 and after["refundedMicros"] == {"USD": 4_990_000}
    assert after["revenueMicros"] == {"USD": 4_990_000}  # what was sold in the window
    net = after["revenueMicros"]["USD"] - after["refundedMicros"]["USD"]
    assert net == 0
    assert await stores.totals("apple", "all") == {**after, "window": "all"}


async def test_google_subscription_payments_count_their_recurring_price_and_packs_none(
    stores: Stores,
) -> None:
    user = uuid.uuid4()
    token, product = f"sub-{uuid.uuid4()}", "premium_monthly"
    expiry = add_months(stores.clock.now(), 1)
    # Play's Money: units "12", nanos 490000000 -> 12.49 EUR, 12 490 000 micros
    stores.play.set_subscription(
        token, product, user, expiry=expiry, order="GPA.1", price_micros=12_490_000, currency="EUR"
    )
    item = stores.play.subscriptions[token]["lineItems"][0]
    assert item["autoRenewingPlan"]["recurringPrice"] == {
        "currencyCode": "EUR",
        "units": "12",
        "nanos": 490_000_000,
    }
    assert (await stores.google(user, product, token)).status_code == 200
    assert (await stores.google(user, product, token)).json()["replayed"] is True
    assert stores.price_of("google", "GPA.1") == (12_490_000, "EUR")

    # renewed: a new order, priced; the same RTDN delivered twice counts once
    stores.clock.advance((expiry - stores.clock.now()).total_seconds() + 60)
    stores.play.renew(token)
    for _ in range(2):
        await stores.rtdn(token, SUBSCRIPTION_RENEWED, product, message_id="m-renew")
    await stores.rtdn(token, SUBSCRIPTION_RENEWED, product, message_id="m-renew-again")
    assert stores.price_of("google", "GPA.1..0") == (12_490_000, "EUR")

    # a pack: purchases.products.get states no price
    pack = f"tok-{uuid.uuid4()}"
    stores.play.set_product(pack, "credits_550", user)
    for _ in range(2):
        assert (await stores.google(user, "credits_550", pack)).status_code == 200
    assert stores.price_of("google", pack) == (None, None)

    totals = await stores.totals("google")
    assert totals["purchases"] == 3 and totals["subscriptionPayments"] == 2
    assert totals["revenueMicros"] == {"EUR": 24_980_000}
    assert (totals["pricedPurchases"], totals["unpricedPurchases"]) == (2, 1)
    assert totals["creditsSold"] == 550


# --- partial refunds ----------------------------------------------------------------------


async def _balance(stores: Stores, user: uuid.UUID) -> int:
    me = await stores.client.get("/v1/me", headers=stores.auth(user))
    return int(me.json()["credits"])


def _clawbacks(stores: Stores, user: uuid.UUID) -> list[int]:
    with psycopg.connect(stores.db) as conn:
        rows = conn.execute(
            "SELECT amount FROM credit_ledger WHERE user_id = %s AND kind = 'clawback'"
            " ORDER BY created_at",
            (user,),
        ).fetchall()
    return [int(r[0]) for r in rows]


async def _post_apple(stores: Stores, payload: str) -> Any:
    return await stores.client.post("/v1/webhooks/apple", json={"signedPayload": payload})


async def test_an_apple_prorated_refund_claws_back_its_share_once_and_counts_its_money(
    stores: Stores,
) -> None:
    """Three 100-credit items for 14.97 USD; Apple refunds one (REFUND_PRORATED,
    revocationPercentage 33333): 99 credits go back (33.333% of 300 is 99.999, rounded
    in the user's favour) and refundedMicros shows a third of the price. The same
    notification delivered ten times at once, and the same news under ten other
    notification ids at once, take nothing more; the full refund after it takes the
    rest, and the money refunded becomes the whole price, counted once."""
    user = uuid.uuid4()
    tx = apple_transaction(
        product_id=APPLE_PACK, user=user, environment="Production", quantity=3, price=14970
    )
    bought = await stores.apple(user, tx)
    assert bought.status_code == 200 and bought.json()["creditsGranted"] == 300, bought.text

    at = stores.clock.now() + timedelta(minutes=5)
    third = refunded(tx, at=at, percentage=33333)
    payload, _ = notification(
        stores.signer, "REFUND", tx=third, signed=at, environment="Production"
    )
    answers = await asyncio.gather(*(_post_apple(stores, payload) for _ in range(10)))
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    actions = sorted(a for r in answers for a in r.json()["actions"])
    assert actions.count("clawed_back:partial") == 1, actions
    assert await _balance(stores, user) == 201
    others = []
    for _ in range(10):
        other, _ = notification(
            stores.signer, "REFUND", tx=third, signed=at, environment="Production"
        )
        others.append(other)
    again = await asyncio.gather(*(_post_apple(stores, p) for p in others))
    assert {a for r in again for a in r.json()["actions"]} == {"stale"}
    assert await _balance(stores, user) == 201
    assert _clawbacks(stores, user) == [-99]

    stores.clock.advance(600)
    partly = await stores.totals("apple", "day")
    assert (partly["refunds"], partly["creditsClawedBack"]) == (1, 99)
    assert partly["byProduct"]["credits_100"] == {"purchases": 1, "refunds": 1}
    assert partly["refundedMicros"] == {"USD": 14_970_000 * 33333 // 100_000}  # 4 989 950
    assert partly["revenueMicros"] == {"USD": 14_970_000}
    assert (partly["pricedPurchases"], partly["unpricedPurchases"]) == (1, 0)

    later = stores.clock.now() + timedelta(minutes=5)
    assert await stores.apple_news("REFUND", refunded(tx, at=later), later) == [
        "clawed_back:refunded"
    ]
    assert await _balance(stores, user) == 0
    assert _clawbacks(stores, user) == [-99, -201]  # the rest, not 300 again
    stores.clock.advance(600)
    whole = await stores.totals("apple", "day")
    assert (whole["refunds"], whole["creditsClawedBack"]) == (1, 300)
    assert whole["refundedMicros"] == {"USD": 14_970_000}


async def test_an_apple_prorated_refund_of_a_monthly_payment_takes_back_its_share(
    stores: Stores,
) -> None:
    """A month of pro (500 credits, 9.99 USD) refunded by half: 250 go back, access
    ends, the payment's refunded money is half its price."""
    user = uuid.uuid4()
    now = stores.clock.now()
    tx = apple_transaction(
        product_id="app.genstudio.pro.monthly",
        user=user,
        environment="Production",
        subscription=True,
        purchased=now,
        expires=add_months(now, 1),
        price=9990,
    )
    bought = await stores.apple(user, tx)
    assert bought.status_code == 200 and bought.json()["creditsGranted"] == 500, bought.text
    at = now + timedelta(days=15)
    stores.clock.advance(15 * 86400)
    half = refunded(tx, at=at, percentage=50000)
    assert await stores.apple_news("REFUND", half, at) == ["clawed_back:refunded"]
    assert await stores.apple_news("REFUND", half, at) == ["stale"]
    assert await _balance(stores, user) == 250
    assert _clawbacks(stores, user) == [-250]
    stores.clock.advance(60)
    totals = await stores.totals("apple", "day")
    assert (totals["refunds"], totals["creditsClawedBack"]) == (1, 250)
    assert totals["refundedMicros"] == {"USD": 4_995_000}


async def _void(stores: Stores, data: dict[str, Any], message_id: str) -> Any:
    return await stores.client.post(
        "/v1/webhooks/google",
        content=stores.play.push_body(data, message_id),
        headers={
            "Authorization": f"Bearer {stores.play.push_token(AUDIENCE)}",
            "Content-Type": "application/json",
        },
    )


async def test_a_google_partial_refund_of_a_multi_item_pack_claws_back_one_pack_once(
    stores: Stores,
) -> None:
    """Quantity 3 of a 100-credit pack grants 300; a quantity-based partial refund of
    one item (voidedQuantity 1) delivered ten times at once, and published again under
    other message ids, takes back 100 once. The stats count the refund with its
    credits; Google states no price for packs, so no money (the purchase unpriced)."""
    user = uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    stores.play.set_product(token, "credits_100", user, quantity=3)
    bought = await stores.google(user, "credits_100", token)
    assert bought.status_code == 200 and bought.json()["creditsGranted"] == 300, bought.text

    at = int(stores.clock.now().timestamp() * 1000) + 1000
    news = {**stores.play.void(token, quantity=1), "eventTimeMillis": str(at)}
    answers = await asyncio.gather(*(_void(stores, news, "m-void-1") for _ in range(10)))
    assert {r.status_code for r in answers} == {200}, [r.text for r in answers]
    actions = [a for r in answers for a in r.json()["actions"]]
    assert actions.count("clawed_back:partial") == 1, actions
    again = await asyncio.gather(*(_void(stores, news, f"m-void-1-{i}") for i in range(10)))
    assert {a for r in again for a in r.json()["actions"]} == {"stale"}
    # news of a later moment that still says one item in all: nothing more either
    later = {**news, "eventTimeMillis": str(at + 1000)}
    assert (await _void(stores, later, "m-void-1-later")).json()["actions"] == [
        "clawed_back:partial"
    ]
    assert await _balance(stores, user) == 200
    assert _clawbacks(stores, user) == [-100]

    stores.clock.advance(60)
    totals = await stores.totals("google")
    assert (totals["refunds"], totals["creditsClawedBack"]) == (1, 100)
    assert totals["byProduct"]["credits_100"] == {"purchases": 1, "refunds": 1}
    assert totals["refundedMicros"] == {} and totals["revenueMicros"] == {}
    assert (totals["pricedPurchases"], totals["unpricedPurchases"]) == (0, 1)
    assert totals["creditsSold"] == 300
