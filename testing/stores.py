"""The App Store and Google Play for a test: stand-ins that sign with test keys, and
genstudio's own store adapters configured to trust them.

``AppleKit``: a certificate chain shaped like Apple's (a root the adapter is told to
trust, an intermediate and a leaf carrying Apple's OIDs), StoreKit 2 transactions and
App Store Server Notifications V2 signed with it, and the App Store Server API on a
loopback port. ``GoogleKit``: the Play Developer API, Google's OAuth token endpoint and
the OIDC certificates a Pub/Sub push token is checked against, on one loopback port;
push bodies and their signed tokens. Both are context managers (the server runs
inside the block); their ``settings`` are what ``APPLE_*`` / ``GOOGLE_*`` would say
in production, and ``store()`` is the adapter those settings build.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Self

from genstudio.entrypoints.iap import apple_store, google_store
from genstudio.entrypoints.iap_settings import AppleSettings, GoogleSettings
from genstudio.ports.stores import AppleStore, GoogleStore
from genstudio.testing.standins import apple as _apple
from genstudio.testing.standins.apple import BUNDLE_ID, AppleSigner, AppStoreServerStandIn
from genstudio.testing.standins.google_play import PACKAGE, PUSH_ACCOUNT, GooglePlayStandIn

#: the audience a Pub/Sub push token names (the webhook's public URL)
PUSH_AUDIENCE = "https://genstudio.test/v1/webhooks/google"


class AppleKit:
    """Apple's side of a purchase, signed with a test chain."""

    bundle_id = BUNDLE_ID

    def __init__(self) -> None:
        self.signer = AppleSigner()
        self.api = AppStoreServerStandIn(self.signer)

    def __enter__(self) -> Self:
        self.api.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.api.stop()

    @property
    def settings(self) -> AppleSettings:
        """``APPLE_*`` trusting the test root, the Server API at the stand-in."""
        return AppleSettings(
            root_certificates=self.signer.root_b64,
            bundle_id=BUNDLE_ID,
            environment="Sandbox",
            online_checks=False,
            api_base_url=self.api.url,
            private_key=self.api.private_key_pem.decode(),
            key_id=self.api.keys.key_id,
            issuer_id=self.api.keys.issuer_id,
            api_timeout=2.0,
        )

    def store(self) -> AppleStore:
        """genstudio's App Store adapter, configured by ``settings``."""
        store = apple_store(self.settings)
        assert store is not None
        return store

    def transaction(
        self, product_id: str, user: uuid.UUID | None, **fields: Any
    ) -> tuple[str, dict[str, Any]]:
        """A StoreKit 2 transaction for ``product_id`` (Apple's id: genstudio's
        ``credits_100`` is ``app.genstudio.credits.100``) bought by ``user``: the JWS
        the app posts, and its payload. ``fields`` as ``standins.apple.transaction``
        takes them (``subscription=True``, ``expires=...``, any payload field)."""
        payload = _apple.transaction(product_id=product_id, user=user, **fields)
        return self.signer.sign(payload), payload

    def notification(
        self, notification_type: str, *, tx: dict[str, Any] | None = None, **fields: Any
    ) -> tuple[str, str]:
        """An App Store Server Notification V2: (``signedPayload``, its UUID)."""
        return _apple.notification(self.signer, notification_type, tx=tx, **fields)


class GoogleKit:
    """Google Play's side of a purchase, and Pub/Sub's pushes."""

    package = PACKAGE

    def __init__(self) -> None:
        self.play = GooglePlayStandIn()

    def __enter__(self) -> Self:
        self.play.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.play.stop()

    @property
    def settings(self) -> GoogleSettings:
        """``GOOGLE_*`` with a service account the stand-in knows, its URLs, and the
        push audience and account it signs pushes for."""
        return GoogleSettings(
            package_name=PACKAGE,
            service_account=json.dumps(self.play.service_account_info()),
            play_base_url=self.play.url,
            oauth_token_url=self.play.token_url,
            oidc_certs_url=self.play.certs_url,
            pubsub_audience=PUSH_AUDIENCE,
            pubsub_service_account=PUSH_ACCOUNT,
            api_timeout=2.0,
        )

    def store(self) -> GoogleStore:
        """genstudio's Google Play adapter, configured by ``settings``."""
        store = google_store(self.settings)
        assert store is not None
        return store

    def product(self, product_id: str, user: uuid.UUID | None, **fields: Any) -> str:
        """A one-time product (a credit pack: genstudio's ``credits_100`` is Play's
        ``credits_100``) bought by ``user``; returns its purchase token."""
        token = f"token-{uuid.uuid4().hex}"
        self.play.set_product(token, product_id, user, **fields)
        return token

    def push(self, notification: dict[str, Any]) -> tuple[bytes, str]:
        """A Real-time developer notification as Pub/Sub pushes it: the body and
        its ``Authorization`` header (a token signed by the stand-in's OIDC key)."""
        body = self.play.push_body(notification)
        return body, f"Bearer {self.play.push_token(PUSH_AUDIENCE)}"
