"""Google Play purchases end to end: the HTTP API in-process on the real Postgres, the
Play Developer API, the OAuth token endpoint and the OIDC certificates on a loopback
stand-in (google-auth's real token exchange and token verification)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from dependency_injector import providers
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from genstudio.adapters.iap_google import GooglePlayStore
from genstudio.adapters.memory import FakeClock
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store, add_months
from genstudio.core.model.purchases.store_events import Purchase, Revocation, RevocationReason
from genstudio.core.services.credits import place_hold, release_hold
from genstudio.core.services.purchases.acknowledgements import acknowledge_pending
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.outcomes import EventOutcome
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.iap import google_store
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.standins.google_play import GooglePlayStandIn, google_settings
from tests.standins.loopback import Fail, RateLimit

pytestmark = pytest.mark.postgres

SECRET = "google-integration-" + "g" * 32
AUDIENCE = "https://api.genstudio.test/v1/webhooks/google"


class Google:
    def __init__(
        self, client: AsyncTestClient[Any], play: GooglePlayStandIn, clock: FakeClock, pg: str
    ) -> None:
        self.client, self.play, self.clock, self.pg = client, play, clock, pg

    def auth(self, user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}

    async def buy(self, user: uuid.UUID, product: str, token: str) -> Any:
        return await self.client.post(
            "/v1/purchases/google",
            json={"productId": product, "purchaseToken": token},
            headers=self.auth(user),
        )

    async def push(
        self,
        notification: dict[str, Any],
        *,
        message_id: str | None = None,
        token: str | None = None,
    ) -> Any:
        body = self.play.push_body(notification, message_id)
        bearer = token if token is not None else self.play.push_token(AUDIENCE)
        return await self.client.post(
            "/v1/webhooks/google",
            content=body,
            headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        )

    async def balance(self, user: uuid.UUID) -> int:
        return int((await self.client.get("/v1/me", headers=self.auth(user))).json()["credits"])

    async def subscription(self, user: uuid.UUID) -> dict[str, Any]:
        body: dict[str, Any] = (
            await self.client.get("/v1/subscription", headers=self.auth(user))
        ).json()
        return body

    def rows(self, sql: str, *args: object) -> int:
        with psycopg.connect(self.pg) as conn:
            row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])

    async def rtdn(self, token: str, kind: int, product: str) -> list[str]:
        """A subscription notification (``notificationType`` ``kind``) for ``token``."""
        response = await self.push(
            {
                "subscriptionNotification": {
                    "version": "1.0",
                    "notificationType": kind,
                    "purchaseToken": token,
                    "subscriptionId": product,
                }
            }
        )
        assert response.status_code == 200, response.text
        actions: list[str] = response.json()["actions"]
        return actions

    def grants(self, token: str) -> int:
        return self.rows(
            "SELECT count(*) FROM allowance_grants WHERE original_transaction_id = %s", token
        )

    async def scheduler(self, user: uuid.UUID) -> int:
        """One allowance pass; what it granted ``user`` (the database is the session's,
        shared with other tests whose fake clocks make their own months due)."""
        c = self.client.app.state.runtime.container
        before = await self.balance(user)
        await grant_due_allowances(c.uow_factory(), catalog=c.iap.products(), now=self.clock.now())
        return await self.balance(user) - before

    def at(self, moment: datetime) -> None:
        self.clock.advance((moment - self.clock.now()).total_seconds() + 60)


@pytest.fixture
def play() -> Iterator[GooglePlayStandIn]:
    with GooglePlayStandIn() as standin:
        yield standin


@pytest.fixture
async def google(pg_url: str, tmp_path: Path, play: GooglePlayStandIn) -> AsyncIterator[Google]:

    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        google=google_settings(play, audience=AUDIENCE),
    )

    def configure(container: AppContainer) -> None:
        container.clock.override(providers.Object(clock))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield Google(client, play, clock, pg_url)


async def test_a_pack_is_granted_once_consumed_after_commit_and_owned_forever(
    google: Google,
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "credits_550", user)
    # a rate limit and a 500 on the way: retried, then granted
    google.play.inject(RateLimit(), when=lambda r: "/products/" in r.path)
    google.play.inject(Fail(500), when=lambda r: "/products/" in r.path)
    responses = await asyncio.gather(*(google.buy(user, "credits_550", token) for _ in range(20)))
    assert {r.status_code for r in responses} == {200}, [r.text for r in responses]
    assert sorted(r.json()["creditsGranted"] for r in responses) == [0] * 19 + [550]
    assert await google.balance(user) == 550
    assert google.play.consumed == [token]
    assert (await google.buy(other, "credits_550", token)).status_code == 409


async def test_purchases_google_does_not_know_are_refused(google: Google) -> None:
    user = uuid.uuid4()
    unknown = await google.buy(user, "credits_100", "no-such-token")
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_purchase"
    google.play.set_product("pending", "credits_100", user, purchaseState=2)
    assert (await google.buy(user, "credits_100", "pending")).status_code == 400
    google.play.set_product("anon", "credits_100", None)
    assert (await google.buy(user, "credits_100", "anon")).json()["field"] == (
        "obfuscatedExternalAccountId"
    )
    google.play.set_product("theirs", "credits_100", uuid.uuid4())
    assert (await google.buy(user, "credits_100", "theirs")).status_code == 409
    assert (await google.buy(user, "not_for_sale", "x")).status_code == 422
    assert await google.balance(user) == 0


@pytest.mark.parametrize(
    "forged",
    [
        "../../credits_100/tokens/{token}",
        "./../../credits_100/tokens/{token}",
        "x/../../../credits_100/tokens/{token}",
        "{token}%2F..",
        "..",
        ".",
        "{token}?x=1",
    ],
)
async def test_a_token_that_is_not_one_path_segment_is_refused_and_claims_nothing(
    google: Google, forged: str
) -> None:
    """A token holding ``../`` used to be resolved by the HTTP client into the real
    purchase's path: one paid pack claimed again under each new spelling, as a pricier
    product."""
    user = uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "credits_100", user)
    assert (await google.buy(user, "credits_100", token)).status_code == 200
    response = await google.buy(user, "credits_1200", forged.format(token=token))
    assert response.status_code == 400, response.text
    assert response.json()["field"] == "purchaseToken"
    assert await google.balance(user) == 100


async def test_an_acknowledgement_google_refused_is_retried_later(google: Google) -> None:
    user = uuid.uuid4()
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "credits_100", user)
    google.play.inject(Fail(503), times=10, when=lambda r: r.path.endswith(":consume"))
    assert (await google.buy(user, "credits_100", token)).status_code == 200
    assert google.play.consumed == []
    google.play.reset()
    runtime = google.client.app.state.runtime
    # the app's client lives on the app's event loop: the retry (a scheduler's job) gets its own
    client = google_store(runtime.settings.google)
    assert isinstance(client, GooglePlayStore)
    done = await acknowledge_pending(
        runtime.container.uow_factory(), client, store=Store.GOOGLE, now=google.clock.now()
    )
    await client.aclose()
    assert done >= 1 and token in google.play.consumed
    assert (
        google.rows(
            "SELECT count(*) FROM store_transactions WHERE transaction_id = %s AND acknowledged",
            token,
        )
        == 1
    )


@pytest.mark.parametrize(
    "case", ["missing", "wrong audience", "wrong account", "forged", "expired"]
)
async def test_pushes_not_from_google_are_refused(google: Google, case: str) -> None:
    play = google.play
    tokens = {
        "missing": "",
        "wrong audience": play.push_token("https://elsewhere.test/hook"),
        "wrong account": play.push_token(AUDIENCE, email="someone@evil.test"),
        "forged": play.push_token(
            AUDIENCE, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ),
        "expired": play.push_token(AUDIENCE, expires_in=-3600),
    }
    response = await google.push({"testNotification": {"version": "1.0"}}, token=tokens[case])
    assert response.status_code == 401, (case, response.text)


async def test_a_subscriptions_whole_life(google: Google) -> None:
    user = uuid.uuid4()
    token = f"sub-{uuid.uuid4()}"
    play, t0 = google.play, google.clock.now()
    product = "premium_monthly"

    def state(s: str, expiry: datetime, order: str, auto_renew: bool = True) -> None:
        play.set_subscription(
            token, product, user, state=s, expiry=expiry, order=order, auto_renew=auto_renew
        )

    async def rtdn(kind: int, message_id: str | None = None) -> None:
        response = await google.push(
            {
                "subscriptionNotification": {
                    "version": "1.0",
                    "notificationType": kind,
                    "purchaseToken": token,
                    "subscriptionId": product,
                }
            },
            message_id=message_id,
        )
        assert response.status_code == 200, response.text

    async def expect(balance: int, status: str, tier: str) -> None:
        assert await google.balance(user) == balance
        sub = await google.subscription(user)
        assert (sub["status"], sub["tier"]) == (status, tier), sub

    def at(t: datetime) -> None:
        google.clock.advance((t - google.clock.now()).total_seconds() + 60)

    # subscribe: Google's periods are calendar months; the period starts a month before expiry
    e1 = add_months(t0, 1)
    state("SUBSCRIPTION_STATE_ACTIVE", e1, "GPA.1")
    response = await google.buy(user, product, token)
    assert response.status_code == 200, response.text
    assert response.json()["creditsGranted"] == 1500
    assert play.acknowledged == [token]
    await expect(1500, "active", "premium")

    # renew twice (SUBSCRIPTION_RENEWED = 2); a redelivered message changes nothing
    at(e1)
    e2 = add_months(e1, 1)
    state("SUBSCRIPTION_STATE_ACTIVE", e2, "GPA.1..0")
    await rtdn(2, message_id="m-renew-1")
    await rtdn(2, message_id="m-renew-1")
    await expect(1500, "active", "premium")
    at(e2)
    e3 = add_months(e2, 1)
    state("SUBSCRIPTION_STATE_ACTIVE", e3, "GPA.1..1")
    await rtdn(2)
    await expect(1500, "active", "premium")

    # billing retry: account hold (SUBSCRIPTION_ON_HOLD = 5): no access, no credits
    at(e3)
    state("SUBSCRIPTION_STATE_ON_HOLD", e3, "GPA.1..1")
    await rtdn(5)
    await expect(0, "on_hold", "free")

    # grace period (SUBSCRIPTION_IN_GRACE_PERIOD = 6): access, still no new credits
    state("SUBSCRIPTION_STATE_IN_GRACE_PERIOD", e3, "GPA.1..1")
    await rtdn(6)
    await expect(0, "grace_period", "premium")

    # recovery (SUBSCRIPTION_RECOVERED = 1): a new period, its allowance
    e4 = add_months(google.clock.now(), 1)
    state("SUBSCRIPTION_STATE_ACTIVE", e4, "GPA.1..2")
    await rtdn(1)
    await expect(1500, "active", "premium")

    # spend some; the voided purchase (a refund) takes back only what is left
    c = google.client.app.state.runtime.container
    async with c.uow_factory()() as uow:
        await place_hold(uow, user_id=user, amount=1000, reference="job", now=google.clock.now())
        await uow.commit()
    response = await google.push(
        {
            "voidedPurchaseNotification": {
                "purchaseToken": token,
                "orderId": "GPA.1..2",
                "productType": 1,
                "refundType": 1,
            }
        }
    )
    assert response.status_code == 200, response.text
    await expect(0, "refunded", "free")
    assert (
        google.rows(
            "SELECT count(*) FROM credit_ledger WHERE user_id = %s AND kind = 'clawback' AND amount = -500",
            user,
        )
        == 1
    )

    # expiry (SUBSCRIPTION_EXPIRED = 13): the refunded period does not come back
    at(e4)
    state("SUBSCRIPTION_STATE_EXPIRED", e4, "GPA.1..2", auto_renew=False)
    await rtdn(13)
    await expect(0, "refunded", "free")
    # every notification re-read the state from subscriptionsv2
    reads = [r for r in play.requests if "/subscriptionsv2/" in r.path]
    assert len(reads) >= 8


async def test_an_upgrade_ends_the_replaced_subscription(google: Google) -> None:
    """Play reads both tokens as active at an upgrade; the new one names the old in
    linkedPurchaseToken, and only the new one goes on earning allowance months."""
    user = uuid.uuid4()
    old, new = f"sub-{uuid.uuid4()}", f"sub-{uuid.uuid4()}"
    expiry = add_months(google.clock.now(), 12)
    google.play.set_subscription(old, "pro_yearly", user, expiry=expiry)
    assert (await google.buy(user, "pro_yearly", old)).json()["creditsGranted"] == 500
    google.play.set_subscription(new, "premium_yearly", user, expiry=expiry)
    google.play.subscriptions[new]["linkedPurchaseToken"] = old
    assert (await google.buy(user, "premium_yearly", new)).json()["creditsGranted"] == 1500

    sub = await google.subscription(user)
    assert (sub["status"], sub["tier"]) == ("active", "premium"), sub
    # the old plan's month was paid for: its credits stay
    assert await google.balance(user) == 2000

    def check_replaced() -> None:
        ended = google.rows(
            "SELECT count(*) FROM entitlements WHERE original_transaction_id = %s"
            " AND status = 'replaced' AND next_allowance_at IS NULL",
            old,
        )
        assert ended == 1
        still_paying = google.rows(
            "SELECT count(*) FROM entitlements WHERE user_id = %s AND next_allowance_at IS NOT NULL",
            user,
        )
        assert still_paying == 1

    check_replaced()
    # Play goes on reading the old token for a while: cancelled, paid up to its expiry
    # (SUBSCRIPTION_CANCELED = 3), then active again: it stays replaced
    order = google.play.subscriptions[old]["latestOrderId"]
    google.play.set_subscription(
        old,
        "pro_yearly",
        user,
        state="SUBSCRIPTION_STATE_CANCELED",
        expiry=expiry,
        order=order,
        auto_renew=False,
    )
    assert await google.rtdn(old, 3, "pro_yearly") == ["replaced"]
    google.play.set_subscription(old, "pro_yearly", user, expiry=expiry, order=order)
    assert await google.rtdn(old, 2, "pro_yearly") == ["replaced"]
    check_replaced()
    # a month on, only the replacement earns its second month
    google.clock.advance(32 * 86400)
    assert await google.scheduler(user) == 1500
    assert google.grants(old) == 1
    sub = await google.subscription(user)
    assert (sub["plan"], sub["tier"]) == ("premium_yearly", "premium"), sub


# --- periods Play moves without a payment --------------------------------------------


async def test_a_grace_period_grants_no_month_until_the_renewal_is_paid(google: Google) -> None:
    """A failed renewal: Play keeps access for the grace period and moves expiryTime to
    its end, the paid order unchanged (the top-level latestOrderId names the declined
    renewal). No month is granted until the renewal is paid; the grace days are part
    of the renewed period (its renewal date stands)."""
    user, token, product = uuid.uuid4(), f"sub-{uuid.uuid4()}", "premium_monthly"
    e1 = add_months(google.clock.now(), 1)
    google.play.set_subscription(token, product, user, expiry=e1, order="GPA.7001")
    assert (await google.buy(user, product, token)).json()["creditsGranted"] == 1500
    period_start = (await google.subscription(user))["periodStart"]

    google.at(e1)  # the first month's credits expire with it
    assert google.play.fail_renewal(token, grace=timedelta(days=7)) == "GPA.7001..0"
    assert await google.rtdn(token, 6, product) == ["grace_period"]  # SUBSCRIPTION_IN_GRACE_PERIOD
    sub = await google.subscription(user)
    assert (sub["status"], sub["tier"], sub["periodStart"]) == (
        "grace_period",
        "premium",
        period_start,
    ), sub
    assert await google.balance(user) == 0
    google.clock.advance(2 * 86400)
    assert await google.scheduler(user) == 0
    assert google.grants(token) == 1

    # the renewal is paid on the third day (SUBSCRIPTION_RECOVERED = 1): its month
    google.play.recover(token, google.clock.now(), grace=timedelta(days=7))
    assert await google.rtdn(token, 1, product) == ["active"]
    assert await google.balance(user) == 1500
    assert google.grants(token) == 2
    assert (
        google.rows(
            "SELECT count(*) FROM allowance_grants WHERE original_transaction_id = %s"
            " AND transaction_id = 'GPA.7001..0' AND month_start = %s",
            token,
            e1,
        )
        == 1
    )


async def test_account_hold_grants_nothing_and_a_recovery_starts_a_new_period(
    google: Google,
) -> None:
    user, token, product = uuid.uuid4(), f"sub-{uuid.uuid4()}", "pro_monthly"
    e1 = add_months(google.clock.now(), 1)
    google.play.set_subscription(token, product, user, expiry=e1, order="GPA.7002")
    assert (await google.buy(user, product, token)).json()["creditsGranted"] == 500

    google.at(e1)
    google.play.fail_renewal(token, grace=timedelta(days=3))
    assert await google.rtdn(token, 6, product) == ["grace_period"]
    google.at(e1 + timedelta(days=3))
    google.play.hold(token)  # SUBSCRIPTION_ON_HOLD = 5
    assert await google.rtdn(token, 5, product) == ["on_hold"]
    assert (await google.subscription(user))["tier"] == "free"
    google.clock.advance(4 * 86400)
    assert await google.scheduler(user) == 0
    assert google.grants(token) == 1

    recovered_at = google.clock.now()
    google.play.recover(token, recovered_at, grace=timedelta(days=3))
    assert await google.rtdn(token, 1, product) == ["active"]
    assert await google.balance(user) == 500
    assert google.grants(token) == 2
    sub = await google.subscription(user)
    assert sub["periodEnd"] == google.play.subscriptions[token]["lineItems"][0]["expiryTime"]
    assert datetime.fromisoformat(sub["periodStart"]) == recovered_at


async def test_a_deferral_extends_the_paid_month_and_grants_no_other(google: Google) -> None:
    """subscriptionsv2.defer (SUBSCRIPTION_DEFERRED = 9) moves expiryTime only: the
    period and its month stay as paid, the days added earn nothing; the next payment
    does."""
    user, token, product = uuid.uuid4(), f"sub-{uuid.uuid4()}", "pro_monthly"
    e1 = add_months(google.clock.now(), 1)
    google.play.set_subscription(token, product, user, expiry=e1, order="GPA.7003")
    assert (await google.buy(user, product, token)).json()["creditsGranted"] == 500
    before = await google.subscription(user)

    google.clock.advance(3 * 86400)
    deferred = e1 + timedelta(days=5)
    google.play.defer(token, expected=e1, desired=deferred)
    assert await google.rtdn(token, 9, product) == ["active"]
    after = await google.subscription(user)
    assert after["periodStart"] == before["periodStart"]
    assert datetime.fromisoformat(after["periodEnd"]) == deferred
    for moment in (google.clock.now() + timedelta(days=3), e1 + timedelta(days=1)):
        google.at(moment)
        assert await google.scheduler(user) == 0
        assert (await google.subscription(user))["active"] is True
    assert google.grants(token) == 1

    google.at(deferred)
    google.play.renew(token)
    assert await google.rtdn(token, 2, product) == ["active"]  # SUBSCRIPTION_RENEWED
    assert google.grants(token) == 2
    assert await google.balance(user) == 500


# --- refunds of multi-item packs ---------------------------------------------------------


async def _bought_three(google: Google, user: uuid.UUID) -> str:
    token = f"tok-{uuid.uuid4()}"
    google.play.set_product(token, "credits_100", user, quantity=3)
    response = await google.buy(user, "credits_100", token)
    assert response.json()["creditsGranted"] == 300, response.text
    return token


def _at(ms: int) -> dict[str, str]:
    return {"eventTimeMillis": str(ms)}


async def test_a_full_refund_of_a_multi_item_pack_takes_it_all_back(google: Google) -> None:
    user = uuid.uuid4()
    token = await _bought_three(google, user)
    response = await google.push(google.play.void(token))
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["clawed_back:refunded"]
    assert await google.balance(user) == 0
    # a full refund needs no Voided Purchases API: the notification says it all
    assert not [r for r in google.play.requests if r.path.endswith("/voidedpurchases")]


async def test_partial_refunds_claw_back_their_items_once_each(google: Google) -> None:
    user = uuid.uuid4()
    token = await _bought_three(google, user)
    t0 = int(google.clock.now().timestamp() * 1000)

    # 1 of 3 refunded: a third goes back
    first = {**google.play.void(token, quantity=1), **_at(t0 + 1000)}
    response = await google.push(first, message_id="m-partial-1")
    assert response.status_code == 200, response.text
    assert response.json()["actions"] == ["clawed_back:partial"]
    assert await google.balance(user) == 200
    # delivered again, and published again under another message id: nothing more
    assert (await google.push(first, message_id="m-partial-1")).json()["actions"] == ["duplicate"]
    again = await google.push(first, message_id="m-partial-1b")
    assert again.json()["actions"] == ["stale"], again.text
    assert await google.balance(user) == 200

    # a second item refunded later: not mistaken for the first, one more third
    second = {**google.play.void(token, quantity=1), **_at(t0 + 2000)}
    assert (await google.push(second, message_id="m-partial-2")).status_code == 200
    assert await google.balance(user) == 100
    assert (await google.push(second, message_id="m-partial-2b")).json()["actions"] == ["stale"]
    # the first one's news arriving late (its API answer now lists both) is stale
    assert (await google.push(first, message_id="m-partial-1c")).json()["actions"] == ["stale"]
    assert await google.balance(user) == 100

    clawbacks = "SELECT count(*) FROM credit_ledger WHERE user_id = %s AND kind = 'clawback'"
    assert google.rows(clawbacks + " AND amount = -100", user) == 2
    assert google.rows(clawbacks, user) == 2
    assert (
        google.rows(
            "SELECT clawed_back FROM store_transactions WHERE transaction_id = %s"
            " AND status = 'granted'",
            token,
        )
        == 200
    )

    # the last item: the whole pack is refunded now
    third = {**google.play.void(token, quantity=1), **_at(t0 + 3000)}
    assert (await google.push(third)).json()["actions"] == ["clawed_back:refunded"]
    assert await google.balance(user) == 0
    # asked with the flag that lists quantity-based partial refunds at all
    asked = [r for r in google.play.requests if r.path.endswith("/voidedpurchases")]
    assert asked and all(r.query["includeQuantityBasedPartialRefund"] == "true" for r in asked)


async def test_a_partial_refund_takes_back_what_a_job_held_when_the_job_gives_it_back(
    google: Google,
) -> None:
    user = uuid.uuid4()
    token = await _bought_three(google, user)
    c = google.client.app.state.runtime.container
    async with c.uow_factory()() as uow:
        hold = await place_hold(
            uow, user_id=user, amount=250, reference="job", now=google.clock.now()
        )
        await uow.commit()
    assert (await google.push(google.play.void(token, quantity=1))).status_code == 200
    assert await google.balance(user) == 0  # 50 were left of the pack; the job keeps 250
    claimed = "SELECT clawed_back FROM store_transactions WHERE transaction_id = %s"
    assert google.rows(claimed, token) == 100
    owed = "SELECT owed FROM credit_lots l JOIN store_transactions s ON s.lot_id = l.id"
    assert google.rows(owed + " WHERE s.transaction_id = %s", token) == 50
    # the job fails: its 250 come back to the pack, less the 50 the refund is owed
    async with c.uow_factory()() as uow:
        assert await release_hold(uow, hold.id, google.clock.now())
        await uow.commit()
    assert await google.balance(user) == 200
    assert google.rows(owed + " WHERE s.transaction_id = %s", token) == 0
    taken = "SELECT -sum(amount) FROM credit_ledger WHERE user_id = %s AND kind = 'clawback'"
    assert google.rows(taken, user) == 100
    assert_ledger_invariants(google.pg, [user])


async def test_a_partial_refund_the_voided_purchases_api_cannot_size_is_retried(
    google: Google,
) -> None:
    """The API down, or not listing the refund yet: the webhook answers 503 so Pub/Sub
    delivers the message again, and writes nothing, not even the message's id."""
    user = uuid.uuid4()
    token = await _bought_three(google, user)
    news = google.play.void(token, quantity=1)
    google.play.voided.clear()  # Google has not listed it yet
    not_listed = await google.push(news, message_id="m-late")
    assert not_listed.status_code == 503, not_listed.text

    google.play.void(token, quantity=1)
    google.play.inject(Fail(500), times=10, when=lambda r: r.path.endswith("/voidedpurchases"))
    down = await google.push(news, message_id="m-late")
    assert down.status_code == 503, down.text
    assert await google.balance(user) == 300
    seen = "SELECT count(*) FROM store_notifications WHERE notification_id = %s"
    assert google.rows(seen, "m-late") == 0
    assert (
        google.rows(
            "SELECT count(*) FROM store_transactions WHERE transaction_id = %s"
            " AND clawed_back = 0 AND revocation_event_at IS NULL",
            token,
        )
        == 1
    )

    google.play.reset()  # the API is back: the redelivery applies, once
    assert (await google.push(news, message_id="m-late")).status_code == 200
    assert (await google.push(news, message_id="m-late")).json()["actions"] == ["duplicate"]
    assert await google.balance(user) == 200


async def test_a_job_released_while_a_second_partial_refund_comes_pays_what_is_owed_once(
    pg_url: str, pg_engine: AsyncEngine
) -> None:
    """The job holding a partly refunded pack's credits fails while a second item's
    refund is applied (the services on Postgres, on the test's own pool): whichever
    gets the account first, the user keeps the one item not refunded, each refunded
    credit is taken once, and the ledger adds up."""
    uows = SqlUnitOfWorkFactory(pg_engine)
    now = datetime.now(UTC)

    async def refund(order: str, items: int, at_ms: int) -> list[EventOutcome]:
        event = Revocation(
            store=Store.GOOGLE,
            occurred_at=now + timedelta(milliseconds=at_ms),
            transaction_id=order,
            original_transaction_id=order,
            reason=RevocationReason.REFUND,
            revoked_quantity=items,
        )
        return await handle_notification(
            uows,
            store=Store.GOOGLE,
            notification_id=str(uuid.uuid4()),
            kind="test",
            events=[event],
            catalog=DEFAULT_PRODUCTS,
            now=now,
        )

    users = []
    for round_ in range(6):
        user, order = uuid.uuid4(), f"GPA.{uuid.uuid4()}"
        users.append(user)
        bought = Purchase(
            store=Store.GOOGLE,
            occurred_at=now,
            transaction_id=order,
            original_transaction_id=order,
            store_product_id="credits_100",
            user_id=user,
            purchased_at=now,
            quantity=3,
        )
        async with uows() as uow:
            await claim_purchase(uow, bought, user_id=user, catalog=DEFAULT_PRODUCTS, now=now)
            await uow.commit()
        async with uows() as uow:
            hold = await place_hold(uow, user_id=user, amount=250, reference="job", now=now)
            await uow.commit()
        assert [o.credits for o in await refund(order, 1, 1)] == [50]
        locked = asyncio.Event()

        async def blocker(user: uuid.UUID = user, locked: asyncio.Event = locked) -> None:
            # holds the account while both ask for it, then lets them race
            async with uows() as uow:
                await uow.ledger.lock_account(user)
                locked.set()
                await asyncio.sleep(0.2)

        async def release(
            hold_id: uuid.UUID = hold.id, delay: float = 0.01 * round_, e: asyncio.Event = locked
        ) -> bool:
            await e.wait()
            await asyncio.sleep(delay)
            async with uows() as uow:
                done = await release_hold(uow, hold_id, now)
                await uow.commit()
            return done

        async def second(
            order: str = order, delay: float = 0.05 - 0.01 * round_, e: asyncio.Event = locked
        ) -> list[EventOutcome]:
            await e.wait()
            await asyncio.sleep(max(delay, 0))
            return await refund(order, 2, 2)

        _, released, outcomes = await asyncio.gather(blocker(), release(), second())
        assert released
        assert [o.action for o in outcomes] == ["clawed_back:partial"]
        async with uows() as uow:
            assert await uow.ledger.balance(user) == 100
            tx = await uow.purchases.get_transaction(Store.GOOGLE, order)
            assert tx is not None and tx.lot_id is not None and tx.clawed_back == 200
            [lot] = await uow.ledger.lots_by_id([tx.lot_id])
            assert (lot.remaining, lot.owed) == (100, 0)
            entries = await uow.ledger.entries(user, limit=100)
        assert sum(e.amount for e in entries if e.kind is EntryKind.CLAWBACK) == -200
    assert_ledger_invariants(pg_url, users)
