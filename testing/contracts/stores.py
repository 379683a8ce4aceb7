"""The store verifiers' contracts (``genstudio.ports.stores``): ``AppleStoreContract``
and ``GoogleStoreContract``, for an adapter of your own (another library, a proxy, a
store of another kind that speaks the same protocol).

Each contract runs its store's stand-in (``genstudio.testing.stores``: Apple's signing
chain and App Store Server API, Google Play's Developer API, OAuth and push tokens)
and hands it to your factory fixture, which returns a function making the adapter
configured to trust it::

    class TestMyAppleStore(AppleStoreContract):
        @pytest.fixture
        def apple_store_factory(self, apple_kit):
            return lambda: MyAppleStore(
                root_certificates=[apple_kit.signer.root_der],
                bundle_id=apple_kit.bundle_id,
                server_api_url=apple_kit.api.url,
            )

``apple_kit.settings`` / ``google_kit.settings`` hold every value genstudio's own
adapters are configured with (keys, URLs, the push audience and account).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from genstudio.core.model.errors import InvalidPurchase, StoreUnavailable, Unauthorized
from genstudio.core.model.purchases.products import ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Purchase,
    Revocation,
    RevocationReason,
    SubscriptionSnapshot,
)
from genstudio.ports.stores import AppleStore, GoogleStore
from genstudio.testing.standins import apple as apple_standin
from genstudio.testing.standins.apple import AppleSigner
from genstudio.testing.standins.loopback import Fail
from genstudio.testing.stores import PUSH_AUDIENCE, AppleKit, GoogleKit

#: store product ids of genstudio's default products (APPLE_/GOOGLE_PRODUCT_IDS unset)
APPLE_PACK = "app.genstudio.credits.100"
APPLE_PLAN = "app.genstudio.pro.monthly"
GOOGLE_PACK = "credits_100"


async def _closed(store: object) -> None:
    close = getattr(store, "aclose", None)
    if close is not None:
        await close()


@pytest.mark.asyncio
class AppleStoreContract:
    """What genstudio relies on from an App Store verifier."""

    @pytest.fixture
    def apple_kit(self) -> Iterator[AppleKit]:
        with AppleKit() as kit:
            yield kit

    @pytest.fixture
    def apple_store_factory(self, apple_kit: AppleKit) -> Callable[[], AppleStore]:
        """Override: a function making the adapter, trusting ``apple_kit``."""
        pytest.fail(f"{type(self).__name__} must override the apple_store_factory fixture")

    @pytest_asyncio.fixture
    async def apple_store(
        self, apple_store_factory: Callable[[], AppleStore]
    ) -> AsyncIterator[AppleStore]:
        store = apple_store_factory()
        yield store
        await _closed(store)

    async def test_a_signed_pack_verifies_to_its_purchase_for_the_account_it_names(
        self, apple_store: AppleStore, apple_kit: AppleKit
    ) -> None:
        user = uuid.uuid4()
        signed, tx = apple_kit.transaction(APPLE_PACK, user)

        purchase = await apple_store.verify_purchase(signed)

        assert isinstance(purchase, Purchase)
        assert purchase.store is Store.APPLE
        assert purchase.transaction_id == tx["transactionId"]
        assert purchase.original_transaction_id == tx["originalTransactionId"]
        assert purchase.store_product_id == APPLE_PACK
        assert purchase.user_id == user
        assert purchase.quantity == 1

    async def test_a_signed_subscription_verifies_to_its_current_period(
        self, apple_store: AppleStore, apple_kit: AppleKit
    ) -> None:
        user = uuid.uuid4()
        now = datetime.now(UTC).replace(microsecond=0)
        expires = now + timedelta(days=30)
        signed, tx = apple_kit.transaction(
            APPLE_PLAN, user, subscription=True, purchased=now, expires=expires
        )

        snapshot = await apple_store.verify_purchase(signed)

        assert isinstance(snapshot, SubscriptionSnapshot)
        assert snapshot.store is Store.APPLE
        assert snapshot.original_transaction_id == tx["originalTransactionId"]
        assert snapshot.store_product_id == APPLE_PLAN
        assert snapshot.user_id == user
        assert snapshot.status is EntitlementStatus.ACTIVE
        assert snapshot.period_end == expires

    @pytest.mark.parametrize(
        "case", ["another key", "another root", "another app", "not a JWS", "tampered"]
    )
    async def test_what_apple_did_not_sign_for_this_app_is_an_invalid_purchase(
        self, apple_store: AppleStore, apple_kit: AppleKit, case: str
    ) -> None:
        tx = apple_standin.transaction(product_id=APPLE_PACK, user=uuid.uuid4())
        if case == "another key":
            signed = apple_kit.signer.sign(tx, key=ec.generate_private_key(ec.SECP256R1()))
        elif case == "another root":
            signed = AppleSigner().sign(tx)
        elif case == "another app":
            signed = apple_kit.signer.sign({**tx, "bundleId": "com.someone.else"})
        elif case == "not a JWS":
            signed = "not-a-jws"
        else:
            header, _, signature = apple_kit.signer.sign(tx).split(".")
            forged = {**tx, "quantity": 100}
            body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
            signed = f"{header}.{body}.{signature}"

        with pytest.raises(InvalidPurchase):
            await apple_store.verify_purchase(signed)

    async def test_a_refund_notification_verifies_with_its_id_and_the_revocation(
        self, apple_store: AppleStore, apple_kit: AppleKit
    ) -> None:
        tx = apple_standin.transaction(product_id=APPLE_PACK, user=uuid.uuid4())
        refunded = apple_standin.refunded(tx, at=datetime.now(UTC))
        signed_payload, notification_id = apple_kit.notification("REFUND", tx=refunded)

        notification = await apple_store.verify_notification(signed_payload)

        assert notification.store is Store.APPLE
        assert notification.notification_id == notification_id
        revocations = [e for e in notification.events if isinstance(e, Revocation)]
        assert [(r.transaction_id, r.reason) for r in revocations] == [
            (tx["transactionId"], RevocationReason.REFUND)
        ]
        assert revocations[0].whole

    async def test_a_notification_apple_did_not_sign_is_an_invalid_purchase(
        self, apple_store: AppleStore
    ) -> None:
        forged, _ = apple_standin.notification(AppleSigner(), "TEST")
        with pytest.raises(InvalidPurchase):
            await apple_store.verify_notification(forged)


@pytest.mark.asyncio
class GoogleStoreContract:
    """What genstudio relies on from a Google Play verifier."""

    @pytest.fixture
    def google_kit(self) -> Iterator[GoogleKit]:
        with GoogleKit() as kit:
            yield kit

    @pytest.fixture
    def google_store_factory(self, google_kit: GoogleKit) -> Callable[[], GoogleStore]:
        """Override: a function making the adapter, configured for ``google_kit``."""
        pytest.fail(f"{type(self).__name__} must override the google_store_factory fixture")

    @pytest_asyncio.fixture
    async def google_store(
        self, google_store_factory: Callable[[], GoogleStore]
    ) -> AsyncIterator[GoogleStore]:
        store = google_store_factory()
        yield store
        await _closed(store)

    async def test_a_bought_pack_reads_as_its_purchase_for_the_account_it_names(
        self, google_store: GoogleStore, google_kit: GoogleKit
    ) -> None:
        user = uuid.uuid4()
        token = google_kit.product(GOOGLE_PACK, user)

        purchase = await google_store.verify_purchase(GOOGLE_PACK, token, ProductKind.CONSUMABLE)

        assert isinstance(purchase, Purchase)
        assert purchase.store is Store.GOOGLE
        assert purchase.store_product_id == GOOGLE_PACK
        assert purchase.user_id == user
        assert purchase.original_transaction_id == token

    async def test_an_unknown_token_is_an_invalid_purchase(self, google_store: GoogleStore) -> None:
        with pytest.raises(InvalidPurchase):
            await google_store.verify_purchase(
                GOOGLE_PACK, f"no-such-{uuid.uuid4()}", ProductKind.CONSUMABLE
            )

    async def test_a_play_that_keeps_failing_is_store_unavailable(
        self, google_store: GoogleStore, google_kit: GoogleKit
    ) -> None:
        token = google_kit.product(GOOGLE_PACK, uuid.uuid4())
        google_kit.play.inject(Fail(503), times=20, when=lambda r: r.path != "/token")
        with pytest.raises(StoreUnavailable):
            await google_store.verify_purchase(GOOGLE_PACK, token, ProductKind.CONSUMABLE)

    async def test_a_push_signed_by_google_for_our_audience_is_accepted(
        self, google_store: GoogleStore, google_kit: GoogleKit
    ) -> None:
        _, authorization = google_kit.push({"testNotification": {"version": "1.0"}})
        await google_store.verify_push(authorization)

    @pytest.mark.parametrize(
        "case", ["none", "not a bearer", "garbage", "another audience", "another key"]
    )
    async def test_a_push_google_did_not_sign_for_us_is_unauthorized(
        self, google_store: GoogleStore, google_kit: GoogleKit, case: str
    ) -> None:
        play = google_kit.play
        authorization: str | None = {
            "none": None,
            "not a bearer": "Basic abc",
            "garbage": "Bearer not-a-token",
            "another audience": f"Bearer {play.push_token('https://elsewhere.test/hook')}",
            "another key": "Bearer "
            + play.push_token(
                PUSH_AUDIENCE, key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
            ),
        }[case]
        with pytest.raises(Unauthorized):
            await google_store.verify_push(authorization)

    async def test_a_one_time_purchase_notification_reads_as_the_purchase(
        self, google_store: GoogleStore, google_kit: GoogleKit
    ) -> None:
        user = uuid.uuid4()
        token = google_kit.product(GOOGLE_PACK, user)
        body, _ = google_kit.push(
            {
                "oneTimeProductNotification": {
                    "version": "1.0",
                    "notificationType": 1,  # ONE_TIME_PRODUCT_PURCHASED
                    "purchaseToken": token,
                    "sku": GOOGLE_PACK,
                }
            }
        )

        notification = await google_store.read_notification(body)

        assert notification.store is Store.GOOGLE
        assert notification.notification_id
        [purchase] = [e for e in notification.events if isinstance(e, Purchase)]
        assert (purchase.store_product_id, purchase.user_id) == (GOOGLE_PACK, user)

    async def test_a_body_that_is_no_play_notification_is_an_invalid_purchase(
        self, google_store: GoogleStore
    ) -> None:
        with pytest.raises(InvalidPurchase):
            await google_store.read_notification(b'{"message": {"data": "!!!"}}')
