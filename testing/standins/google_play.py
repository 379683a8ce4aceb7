"""Google, made in the tests: the OAuth token endpoint, the Play Developer API and the
OIDC certificates Pub/Sub push tokens are checked against, on one loopback server.

- ``POST /token``: the service account's JWT-bearer grant; the assertion must be
  RS256-signed by the service account's key with ``aud`` this endpoint and the
  androidpublisher scope; answers an access token (``expires_in`` 3600).
- ``GET /androidpublisher/v3/applications/{package}/purchases/products/{id}/tokens/{t}``
  and ``.../purchases/subscriptionsv2/tokens/{t}``: from ``products`` /
  ``subscriptions`` (404 for an unknown token); ``POST ...:consume`` /
  ``...:acknowledge`` record into ``consumed`` / ``acknowledged``. A missing or
  unknown access token is 401.
- ``GET .../purchases/voidedpurchases``: the Voided Purchases API over ``voided``
  (``void`` adds to it), as Google documents it: ``startTime`` / ``endTime`` (ms;
  default the last 30 days, a start older than that is 400), ``type`` (0: one-time
  products only, the default; 1: subscriptions too), ``includeQuantityBasedPartialRefund``
  (entries of quantity-based partial refunds, those with ``voidedQuantity``, only when
  true), pages of ``maxResults`` (default 1000) chained by
  ``tokenPagination.nextPageToken`` / ``token``.
- ``GET /oidc/certs``: ``{kid: PEM certificate}`` of the key ``push_token`` signs with,
  with Google's ``Cache-Control: public, max-age=19800, ...``.

A subscription's life as Play tells it (``renew``, ``fail_renewal``, ``hold``,
``recover``, ``defer``): each paid order is the line item's ``latestSuccessfulOrderId``
(``GPA.x`` at signup, ``GPA.x..0``, ``GPA.x..1``, ... at renewals); the deprecated
top-level ``latestOrderId`` is the latest order of any kind, a declined renewal
included. A failed renewal opens the grace period (``SUBSCRIPTION_STATE_IN_GRACE_PERIOD``)
and moves ``expiryTime`` to its end; account hold (``SUBSCRIPTION_STATE_ON_HOLD``)
leaves it there, in the past; a recovery from grace keeps the renewal date (the new
period runs from the old expiry), one from hold starts the period at the recovery; a
deferral (``subscriptionsv2.defer``) moves ``expiryTime`` only, no order is made.

Faults: ``inject(Fail(500))``, ``inject(RateLimit())``, ``inject(Stall(5))``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from genstudio.core.model.purchases.products import add_months
from genstudio.testing.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

PACKAGE = "app.genstudio.android"
PUSH_ACCOUNT = "play-rtdn@genstudio-test.iam.gserviceaccount.com"
PREFIX = f"/androidpublisher/v3/applications/{PACKAGE}/purchases"


def _pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _self_signed(key: rsa.RSAPrivateKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test oidc")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2045, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class GooglePlayStandIn(LoopbackStandIn):
    name = "google-play"

    def __init__(self) -> None:
        super().__init__()
        self.account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.oidc_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.oidc_kid = secrets.token_hex(8)
        self.access_tokens: set[str] = set()
        self.products: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.consumed: list[str] = []
        self.acknowledged: list[str] = []
        #: VoidedPurchase resources, oldest first; ``_subscription`` marks a plan's
        self.voided: list[dict[str, Any]] = []

    # -- what the service is configured with -----------------------------------------

    @property
    def token_url(self) -> str:
        return self.url + "/token"

    @property
    def certs_url(self) -> str:
        return self.url + "/oidc/certs"

    def service_account_info(self) -> dict[str, Any]:
        return {
            "type": "service_account",
            "project_id": "genstudio-test",
            "private_key_id": "test-key",
            "private_key": _pem(self.account_key),
            "client_email": "play-api@genstudio-test.iam.gserviceaccount.com",
            "client_id": "1234567890",
            "token_uri": self.token_url,
        }

    # -- what the test drives -----------------------------------------------------------

    def push_token(
        self,
        audience: str,
        *,
        email: str = PUSH_ACCOUNT,
        key: rsa.RSAPrivateKey | None = None,
        issuer: str = "https://accounts.google.com",
        expires_in: int = 3600,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "azp": "1234",
            "sub": "1234",
            "email": email,
            "email_verified": True,
            "iat": now,
            "exp": now + expires_in,
        }
        return jwt.encode(
            claims, key or self.oidc_key, algorithm="RS256", headers={"kid": self.oidc_kid}
        )

    @staticmethod
    def push_body(notification: dict[str, Any], message_id: str | None = None) -> bytes:
        data = {
            "version": "1.0",
            "packageName": PACKAGE,
            "eventTimeMillis": str(int(time.time() * 1000)),
        }
        data.update(notification)
        return json.dumps(
            {
                "message": {
                    "data": base64.b64encode(json.dumps(data).encode()).decode(),
                    "messageId": message_id or str(uuid.uuid4().int)[:16],
                    "publishTime": datetime.now(UTC).isoformat(),
                },
                "subscription": "projects/genstudio-test/subscriptions/play-rtdn",
            }
        ).encode()

    def set_product(
        self, token: str, product_id: str, user: uuid.UUID | None, **extra: Any
    ) -> None:
        purchase: dict[str, Any] = {
            "kind": "androidpublisher#productPurchase",
            "purchaseTimeMillis": str(int(time.time() * 1000)),
            "purchaseState": 0,
            "consumptionState": 0,
            "orderId": f"GPA.{uuid.uuid4().int % 10**16:016d}",
            "purchaseType": 0,
            "acknowledgementState": 0,
            "quantity": 1,
            "productId": product_id,
        }
        if user is not None:
            purchase["obfuscatedExternalAccountId"] = str(user)
        purchase.update(extra)
        self.products[token] = purchase

    def set_subscription(
        self,
        token: str,
        product_id: str,
        user: uuid.UUID | None,
        *,
        state: str = "SUBSCRIPTION_STATE_ACTIVE",
        expiry: datetime,
        auto_renew: bool = True,
        order: str | None = None,
        latest_order: str | None = None,
        price_micros: int | None = 9_990_000,
        currency: str = "USD",
    ) -> None:
        """``order``: the order that paid for the current period; ``latest_order``: the
        latest order of any kind (a declined renewal), ``order`` unless given.
        ``price_micros``/``currency``: the plan's ``autoRenewingPlan.recurringPrice``,
        a ``Money`` (``units`` as a string, ``nanos``) as Play answers it; None: none."""
        paid = order or f"GPA.{token[:8]}"
        plan: dict[str, Any] = {"autoRenewEnabled": auto_renew}
        if price_micros is not None:
            plan["recurringPrice"] = {
                "currencyCode": currency,
                "units": str(price_micros // 1_000_000),
                "nanos": price_micros % 1_000_000 * 1000,
            }
        sub: dict[str, Any] = {
            "kind": "androidpublisher#subscriptionPurchaseV2",
            "regionCode": "US",
            "startTime": _rfc3339(expiry - timedelta(days=30)),
            "subscriptionState": state,
            "latestOrderId": latest_order or paid,
            "acknowledgementState": "ACKNOWLEDGEMENT_STATE_PENDING",
            "lineItems": [
                {
                    "productId": product_id,
                    "expiryTime": _rfc3339(expiry),
                    "autoRenewingPlan": plan,
                    "offerDetails": {"basePlanId": "monthly"},
                    "latestSuccessfulOrderId": paid,
                }
            ],
        }
        if user is not None:
            sub["externalAccountIdentifiers"] = {"obfuscatedExternalAccountId": str(user)}
        self.subscriptions[token] = sub

    # -- a subscription's life ----------------------------------------------------------

    def _item(self, token: str) -> dict[str, Any]:
        item: dict[str, Any] = self.subscriptions[token]["lineItems"][0]
        return item

    def expiry(self, token: str) -> datetime:
        return datetime.fromisoformat(self._item(token)["expiryTime"].replace("Z", "+00:00"))

    def _next_order(self, token: str) -> str:
        """Play's recurring order ids: ``GPA.x..0`` renews ``GPA.x``, then ``..1``, ..."""
        last = str(self.subscriptions[token]["latestOrderId"])
        base, _, n = last.partition("..")
        return f"{base}..{int(n) + 1 if n else 0}"

    def _paid(self, token: str, order: str, expiry: datetime) -> None:
        sub, item = self.subscriptions[token], self._item(token)
        sub["subscriptionState"] = "SUBSCRIPTION_STATE_ACTIVE"
        sub["latestOrderId"] = order
        item["latestSuccessfulOrderId"] = order
        item["expiryTime"] = _rfc3339(expiry)

    def renew(self, token: str, *, months: int = 1) -> str:
        """The renewal at expiry is paid: a new order, the next period. Answers the order."""
        order = self._next_order(token)
        self._paid(token, order, add_months(self.expiry(token), months))
        return order

    def fail_renewal(self, token: str, *, grace: timedelta = timedelta(days=7)) -> str:
        """The renewal at expiry is declined: Play opens the grace period and moves
        ``expiryTime`` to its end; the paid order stays the last successful one.
        Answers the declined order."""
        sub = self.subscriptions[token]
        declined = self._next_order(token)
        sub["subscriptionState"] = "SUBSCRIPTION_STATE_IN_GRACE_PERIOD"
        sub["latestOrderId"] = declined
        self._item(token)["expiryTime"] = _rfc3339(self.expiry(token) + grace)
        return declined

    def hold(self, token: str) -> None:
        """The grace period ended unpaid: account hold, no access; expiryTime stays past."""
        self.subscriptions[token]["subscriptionState"] = "SUBSCRIPTION_STATE_ON_HOLD"

    def recover(self, token: str, at: datetime, *, grace: timedelta, months: int = 1) -> None:
        """The declined renewal is paid at ``at``: from a grace period of ``grace`` the
        renewal date stands (the period runs from the expiry before the grace period);
        from account hold the new period starts at ``at``."""
        sub = self.subscriptions[token]
        order = str(sub["latestOrderId"])
        if sub["subscriptionState"] == "SUBSCRIPTION_STATE_ON_HOLD":
            expiry = add_months(at, months)
        else:
            expiry = add_months(self.expiry(token) - grace, months)
        self._paid(token, order, expiry)

    def defer(self, token: str, *, expected: datetime, desired: datetime) -> None:
        """``subscriptionsv2.defer``: the next charge moves to ``desired``; only
        ``expiryTime`` changes, nothing is paid. Refused, as Play does, unless the
        expiry is ``expected`` and ``desired`` later."""
        if self.expiry(token) != expected or desired <= expected:
            raise ValueError("Play refuses the deferral")
        self._item(token)["expiryTime"] = _rfc3339(desired)

    def void(
        self,
        token: str,
        *,
        quantity: int | None = None,
        at: datetime | None = None,
        reason: int = 1,
        source: int = 0,
    ) -> dict[str, Any]:
        """Void a purchase of ``products`` or ``subscriptions``: all of it, or
        ``quantity`` items (a quantity-based partial refund). Answers the RTDN's
        ``voidedPurchaseNotification`` for it."""
        subscription = token in self.subscriptions
        purchase = self.subscriptions[token] if subscription else self.products[token]
        # a subscription's refund is of a paid order: its latest successful one
        order = (
            self._item(token).get("latestSuccessfulOrderId")
            if subscription
            else purchase.get("orderId")
        ) or ""
        entry: dict[str, Any] = {
            "kind": "androidpublisher#voidedPurchase",
            "purchaseToken": token,
            "purchaseTimeMillis": purchase.get("purchaseTimeMillis", "0"),
            "voidedTimeMillis": str(int((at or datetime.now(UTC)).timestamp() * 1000)),
            "orderId": order,
            "voidedSource": source,
            "voidedReason": reason,
            "_subscription": subscription,
        }
        if quantity is not None:
            entry["voidedQuantity"] = quantity
        self.voided.append(entry)
        return {
            "voidedPurchaseNotification": {
                "purchaseToken": token,
                "orderId": order,
                "productType": 1 if subscription else 2,
                "refundType": 1 if quantity is None else 2,
            }
        }

    # -- serving ------------------------------------------------------------------------

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply(
            {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}},
            status,
            headers,
        )

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if request.path == "/token" and request.method == "POST":
            return self._token(request)
        if request.path == "/oidc/certs":
            # as Google serves them: cacheable for hours (the adapter keeps them so long)
            return json_reply(
                {self.oidc_kid: _self_signed(self.oidc_key)},
                200,
                {"Cache-Control": "public, max-age=19800, must-revalidate, no-transform"},
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.access_tokens:
            return self.error_reply(401, "Request had invalid authentication credentials.", {})
        path = request.path
        if not path.startswith(PREFIX):
            return self.error_reply(404, "No application was found for the given package name.", {})
        rest = path[len(PREFIX) :]
        if request.method == "POST" and rest.endswith(":consume"):
            self.consumed.append(rest.rsplit("/", 1)[1].removesuffix(":consume"))
            return Reply(204)
        if request.method == "POST" and rest.endswith(":acknowledge"):
            self.acknowledged.append(rest.rsplit("/", 1)[1].removesuffix(":acknowledge"))
            return Reply(204)
        if rest == "/voidedpurchases" and request.method == "GET":
            return self._voided_list(request.query)
        if rest.startswith("/subscriptionsv2/tokens/"):
            sub = self.subscriptions.get(rest.rsplit("/", 1)[1])
            if sub is None:
                return self.error_reply(
                    410, "The subscription purchase is no longer available.", {}
                )
            return json_reply(sub)
        if rest.startswith("/products/"):
            parts = rest.split("/")  # ['', 'products', id, 'tokens', token]
            purchase = self.products.get(parts[-1])
            if purchase is None or purchase.get("productId") != parts[2]:
                return self.error_reply(
                    400, "The purchase token does not match the product ID.", {}
                )
            return json_reply(purchase)
        return self.error_reply(404, "Not found", {})

    def _voided_list(self, query: dict[str, str]) -> Reply:
        now = int(time.time() * 1000)
        window = 30 * 24 * 3600 * 1000
        try:
            start = int(query.get("startTime", now - window))
            end = int(query.get("endTime", now))
            kind = int(query.get("type", 0))
            size = int(query.get("maxResults", 1000))
            offset = int(query.get("token", "0") or 0)
        except ValueError:
            return self.error_reply(400, "Invalid value.", {})
        if start < now - window - 60_000 or end > now + 60_000 or kind not in (0, 1):
            return self.error_reply(400, "Invalid time range or type.", {})
        partial = query.get("includeQuantityBasedPartialRefund") == "true"
        listed = [
            {k: v for k, v in entry.items() if not k.startswith("_")}
            for entry in self.voided
            if start <= int(entry["voidedTimeMillis"]) <= end
            and (kind == 1 or not entry["_subscription"])
            and (partial or "voidedQuantity" not in entry)
        ]
        page = listed[offset : offset + size]
        body: dict[str, Any] = {
            "pageInfo": {"totalResults": len(listed), "resultPerPage": size, "startIndex": offset},
            "voidedPurchases": page,
        }
        if offset + size < len(listed):
            body["tokenPagination"] = {"nextPageToken": str(offset + size)}
        return json_reply(body)

    def _token(self, request: Request) -> Reply:
        form = dict(urllib.parse.parse_qsl(request.body.decode()))
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.account_key.public_key(),
                algorithms=["RS256"],
                # google-auth names Google's token endpoint, wherever it posts
                audience=[self.token_url, "https://oauth2.googleapis.com/token"],
            )
        except jwt.PyJWTError as exc:
            return json_reply({"error": "invalid_grant", "error_description": str(exc)}, 400)
        if "androidpublisher" not in claims.get("scope", ""):
            return json_reply({"error": "invalid_scope"}, 400)
        access = secrets.token_urlsafe(24)
        self.access_tokens.add(access)
        return json_reply({"access_token": access, "expires_in": 3600, "token_type": "Bearer"})
