"""``ports.stores.GoogleStore`` over the Google Play Developer API and Pub/Sub push.

- Purchases are read from ``purchases.products.get`` and ``purchases.subscriptionsv2.get``
  with a service account's OAuth token (``google-auth``: a JWT assertion exchanged at
  the token endpoint); the base URL and the token endpoint are configurable.
- Delivery is reported with ``purchases.products.consume`` (packs) and
  ``purchases.subscriptions.acknowledge`` (plans): Google refunds what is not
  acknowledged within three days.
- A quantity-based partial refund (``voidedPurchaseNotification.refundType`` 2) says
  how many items it voided only in ``purchases.voidedpurchases.list``
  (``includeQuantityBasedPartialRefund=true``): the order's ``voidedQuantity`` summed
  over the entries listed is the event's cumulative ``revoked_quantity``.
- Real-time developer notifications arrive as Pub/Sub pushes whose OIDC token
  (signed by Google, ``aud`` our endpoint, ``email`` the push service account) is
  checked against Google's certificates (URL configurable). A notification only names
  a purchase: its state is always re-read from the API before anything happens.

Transient answers (429, 5xx, timeouts) are retried a few times, then StoreUnavailable;
an unknown token (400, 404, 410) is InvalidPurchase.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import httpx
import msgspec
from google.oauth2 import service_account

from genstudio.core.model.errors import InvalidPurchase, StoreUnavailable, Unauthorized
from genstudio.core.model.purchases.entitlements import StoreTransaction
from genstudio.core.model.purchases.prices import MICROS, Price
from genstudio.core.model.purchases.products import ProductKind, Store
from genstudio.core.model.purchases.store_events import (
    EntitlementStatus,
    Informational,
    Purchase,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.ports.stores import StoreNotification

log = logging.getLogger("genstudio.iap.google")

SCOPE = "https://www.googleapis.com/auth/androidpublisher"
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")

_STATES = {
    "SUBSCRIPTION_STATE_ACTIVE": EntitlementStatus.ACTIVE,
    # cancelled by the user: paid up until expiry, no renewal
    "SUBSCRIPTION_STATE_CANCELED": EntitlementStatus.ACTIVE,
    "SUBSCRIPTION_STATE_IN_GRACE_PERIOD": EntitlementStatus.GRACE_PERIOD,
    "SUBSCRIPTION_STATE_ON_HOLD": EntitlementStatus.ON_HOLD,
    "SUBSCRIPTION_STATE_PAUSED": EntitlementStatus.PAUSED,
    "SUBSCRIPTION_STATE_EXPIRED": EntitlementStatus.EXPIRED,
}

# SubscriptionNotification.notificationType / OneTimeProductNotification.notificationType
_ONE_TIME_PURCHASED = 1
# VoidedPurchaseNotification.refundType (1: REFUND_TYPE_FULL_REFUND)
_QUANTITY_BASED_PARTIAL_REFUND = 2
#: pages of voided purchases read for one notification, at most (a bound of ours)
_VOIDED_PAGES = 50

#: Google's OIDC certificates are kept as long as their Cache-Control max-age says
#: (hours); without one, this long
CERTS_DEFAULT_SECONDS = 300.0
#: ...never longer than this (a key Google withdrew stops counting within it)
CERTS_MAX_SECONDS = 24 * 3600.0
#: an unknown key id, or a failed fetch, asks again at most this often: posts with
#: made-up tokens must not turn into requests to Google (issue #19)
CERTS_REFETCH_SECONDS = 60.0
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age=(\d+)")


def _time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _ms(value: str | int | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(int(value) / 1000, UTC)


def _user(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _price(item: dict[str, Any]) -> Price | None:
    """What a subscription line item's current period costs, as far as Play says:
    ``autoRenewingPlan.recurringPrice`` (a ``Money``: ``units``, an int64 sent as a
    string, and ``nanos``) in micros, the plan's list price before tax. In a free
    trial nothing was charged (0); in an introductory or proration phase the list
    price is not what was charged: unpriced (None), as a prepaid plan is (no
    recurring price). ``purchases.products.get`` states no price at all."""
    phase = item.get("offerPhase") or {}
    money = (item.get("autoRenewingPlan") or {}).get("recurringPrice") or {}
    currency = money.get("currencyCode")
    if "freeTrial" in phase:
        return Price.of(0, currency)
    if "introductoryPrice" in phase or "prorationPeriod" in phase:
        return None
    try:
        amount = int(money["units"]) * MICROS + int(money.get("nanos") or 0) // 1000
    except (KeyError, TypeError, ValueError):
        return None
    return Price.of(amount, currency)


#: what a Play product id or purchase token is made of (letters, digits, ``._-``)
_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,512}")


def _segment(value: str, field: str) -> str:
    """``value`` as one segment of a Play API path. Anything else is refused: a token
    holding ``../`` was resolved by the HTTP client into another purchase's path, so
    one paid purchase could be claimed again and again under other "tokens"."""
    if not _SEGMENT.fullmatch(value) or not value.strip("."):
        raise InvalidPurchase(f"{field} is not a Google Play {field}", field=field)
    return quote(value, safe="")


class _PushMessage(msgspec.Struct, rename="camel"):
    data: str
    message_id: str
    publish_time: str | None = None


class _Push(msgspec.Struct):
    message: _PushMessage
    subscription: str | None = None


class GooglePlayStore:
    def __init__(
        self,
        *,
        package_name: str,
        service_account_info: dict[str, Any],
        pubsub_audience: str | None,
        pubsub_service_account: str | None,
        base_url: str = "https://androidpublisher.googleapis.com",
        token_url: str = "https://oauth2.googleapis.com/token",
        certs_url: str = "https://www.googleapis.com/oauth2/v1/certs",
        timeout: float = 10.0,
        retries: int = 2,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._package = package_name
        info = {**service_account_info, "token_uri": token_url}
        # google-auth leaves from_service_account_info unannotated
        self._credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[SCOPE]
        )
        self._credentials_lock = threading.Lock()
        self._auth_request = google.auth.transport.requests.Request()
        self._base = f"{base_url.rstrip('/')}/androidpublisher/v3/applications/{package_name}"
        self._audience = pubsub_audience
        self._push_account = pubsub_service_account
        self._certs_url = certs_url
        self._certs: dict[str, str] = {}
        self._certs_expire = 0.0  # monotonic time the cached certificates go stale
        self._certs_fetched: float | None = None  # monotonic time of the last fetch
        self._certs_lock = asyncio.Lock()
        self._retries = retries
        self._http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the Play Developer API ---------------------------------------------------------

    def _token(self, force: bool) -> str:
        with self._credentials_lock:
            if force or not self._credentials.valid:
                self._credentials.refresh(self._auth_request)
            token: str = self._credentials.token
            return token

    async def _call(self, method: str, path: str) -> dict[str, Any]:
        force = False
        attempt = 0
        while True:
            try:
                token = await asyncio.to_thread(self._token, force)
            except google.auth.exceptions.GoogleAuthError as exc:
                raise StoreUnavailable(f"Google OAuth token unavailable: {exc}") from exc
            try:
                response = await self._http.request(
                    method, self._base + path, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                failure: str = repr(exc)
            else:
                status = response.status_code
                if status < 300:
                    return response.json() if response.content else {}
                if status == 401 and not force:
                    force = True  # a revoked or expired token: get a new one once
                    continue
                if status in (400, 404, 410):
                    raise InvalidPurchase(
                        f"Google Play does not know this purchase ({status})", field="purchaseToken"
                    )
                if status not in (408, 429) and status < 500:
                    raise StoreUnavailable(f"Google Play answered {status}")
                failure = f"HTTP {status}"
            attempt += 1
            if attempt > self._retries:
                raise StoreUnavailable(f"Google Play is unavailable ({failure})")
            await asyncio.sleep(0.2 * attempt)

    async def _product(self, product_id: str, token: str) -> dict[str, Any]:
        product, token = _segment(product_id, "productId"), _segment(token, "purchaseToken")
        return await self._call("GET", f"/purchases/products/{product}/tokens/{token}")

    async def _subscription(self, token: str) -> dict[str, Any]:
        token = _segment(token, "purchaseToken")
        return await self._call("GET", f"/purchases/subscriptionsv2/tokens/{token}")

    # -- genstudio.ports.stores.GoogleStore -------------------------------------------------------

    async def verify_purchase(
        self, store_product_id: str, purchase_token: str, kind: ProductKind
    ) -> Purchase | SubscriptionSnapshot:
        if kind is ProductKind.CONSUMABLE:
            purchase = await self._product(store_product_id, purchase_token)
            if purchase.get("purchaseState", 0) != 0:
                raise InvalidPurchase(
                    "the purchase is pending or cancelled, not paid", field="purchaseToken"
                )
            event = self._pack(store_product_id, purchase_token, purchase)
            if event.user_id is None:
                raise InvalidPurchase(
                    "the purchase names no obfuscatedExternalAccountId",
                    field="obfuscatedExternalAccountId",
                )
            return event
        subscription = await self._subscription(purchase_token)
        snapshot = self._snapshot(purchase_token, subscription, datetime.now(UTC))
        if snapshot is None:
            raise InvalidPurchase("the subscription is pending, not paid", field="purchaseToken")
        if snapshot.store_product_id != store_product_id:
            raise InvalidPurchase("the token is for another product", field="productId")
        if snapshot.user_id is None:
            raise InvalidPurchase(
                "the purchase names no obfuscatedExternalAccountId",
                field="obfuscatedExternalAccountId",
            )
        return snapshot

    async def acknowledge(self, transaction: StoreTransaction) -> None:
        token = _segment(transaction.original_transaction_id, "purchaseToken")
        product = _segment(transaction.store_product_id, "productId")
        if transaction.kind is ProductKind.CONSUMABLE:
            path = f"/purchases/products/{product}/tokens/{token}:consume"
        else:
            path = f"/purchases/subscriptions/{product}/tokens/{token}:acknowledge"
        try:
            await self._call("POST", path)
        except InvalidPurchase:
            # consumed or acknowledged already, or refunded meanwhile: nothing left to tell
            log.warning("Google refused an acknowledgement", extra={"path": path})

    async def verify_push(self, authorization: str | None) -> None:
        if self._audience is None or self._push_account is None:
            raise Unauthorized("Google push verification is not configured")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("a Pub/Sub push carries a bearer OIDC token")
        try:
            kid = google.auth.jwt.decode_header(token).get("kid")  # type: ignore[no-untyped-call]
        except (ValueError, google.auth.exceptions.GoogleAuthError):
            raise Unauthorized("the push token did not verify") from None
        certs = await self._oidc_certs(kid if isinstance(kid, str) else None)
        try:
            claims = google.auth.jwt.decode(token, certs=certs, audience=self._audience)  # type: ignore[no-untyped-call]
        except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
            # the library's words go to our log only: a prober learns nothing from them
            log.info("a push token did not verify", extra={"error": str(exc)[:200]})
            raise Unauthorized("the push token did not verify") from None
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise Unauthorized("the push token was not issued by Google")
        if claims.get("email") != self._push_account or not claims.get("email_verified"):
            raise Unauthorized("the push comes from another service account")

    async def _oidc_certs(self, kid: str | None) -> dict[str, str]:
        """Google's OIDC certificates, fetched once per their Cache-Control max-age
        (google-auth's ``verify_token`` fetched them for every push). A key id they do
        not hold refetches them at most every CERTS_REFETCH_SECONDS. Raises
        StoreUnavailable when there are none to check against (Pub/Sub redelivers)."""
        async with self._certs_lock:
            now = time.monotonic()
            if now >= self._certs_expire or (kid is not None and kid not in self._certs):
                await self._fetch_certs(now)
            if not self._certs:
                raise StoreUnavailable("Google's signing certificates are unavailable")
            return self._certs

    async def _fetch_certs(self, now: float) -> None:
        if self._certs_fetched is not None and now - self._certs_fetched < CERTS_REFETCH_SECONDS:
            return  # asked a moment ago: not again for every post
        self._certs_fetched = now
        try:
            response = await self._http.get(self._certs_url)
            response.raise_for_status()
            certs = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning(
                "Google's OIDC certificates could not be fetched", extra={"error": repr(exc)}
            )
            return  # the stale ones, if any, still serve
        if not isinstance(certs, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in certs.items()
        ):
            log.warning("Google's OIDC certificates came malformed")
            return
        match = _MAX_AGE.search(response.headers.get("cache-control", ""))
        seconds = float(match.group(1)) if match else CERTS_DEFAULT_SECONDS
        self._certs = certs
        self._certs_expire = now + min(seconds, CERTS_MAX_SECONDS)

    async def read_notification(self, body: bytes) -> StoreNotification:
        try:
            push = msgspec.json.decode(body, type=_Push)
            data = json.loads(base64.b64decode(push.message.data))
        except (msgspec.DecodeError, binascii.Error, ValueError) as exc:
            raise InvalidPurchase("not a Pub/Sub push of a Play notification") from exc
        if not isinstance(data, dict) or data.get("packageName") != self._package:
            raise InvalidPurchase("the notification is for another app", field="packageName")
        occurred = _ms(data.get("eventTimeMillis"))
        events: list[StoreEvent]
        if sub := data.get("subscriptionNotification"):
            kind = f"subscription:{sub.get('notificationType')}"
            token = str(sub.get("purchaseToken", ""))
            snapshot = self._snapshot(token, await self._subscription(token), occurred)
            events = [
                snapshot
                if snapshot is not None
                else Informational(store=Store.GOOGLE, occurred_at=occurred, kind=kind)
            ]
        elif one := data.get("oneTimeProductNotification"):
            kind = f"one_time:{one.get('notificationType')}"
            token, sku = str(one.get("purchaseToken", "")), str(one.get("sku", ""))
            events = [Informational(store=Store.GOOGLE, occurred_at=occurred, kind=kind)]
            if one.get("notificationType") == _ONE_TIME_PURCHASED:
                purchase = await self._product(sku, token)
                if purchase.get("purchaseState", 0) == 0:
                    events = [self._pack(sku, token, purchase)]
        elif voided := data.get("voidedPurchaseNotification"):
            kind = "voided"
            token = str(voided.get("purchaseToken", ""))
            order = str(voided.get("orderId") or "") or None
            revoked = None
            if voided.get("refundType") == _QUANTITY_BASED_PARTIAL_REFUND:
                kind = "voided:partial"
                revoked = await self._voided_quantity(order, token)
            events = [
                Revocation(
                    store=Store.GOOGLE,
                    occurred_at=occurred,
                    transaction_id=order or token,
                    original_transaction_id=token,
                    reason=RevocationReason.REFUND,
                    revoked_quantity=revoked,
                )
            ]
        else:
            kind = "test" if "testNotification" in data else "unknown"
            events = [Informational(store=Store.GOOGLE, occurred_at=occurred, kind=kind)]
        return StoreNotification(
            store=Store.GOOGLE, notification_id=push.message.message_id, kind=kind, events=events
        )

    async def _voided_quantity(self, order: str | None, token: str) -> int | None:
        """Items of the order voided so far, every quantity-based partial refund in the
        Voided Purchases API's window (its last 30 days) together; None: a full refund
        is listed too. Raises StoreUnavailable where the API fails or does not list the
        order yet: the notification is delivered again later, nothing applied."""
        _segment(token, "purchaseToken")  # refuses what cannot be a token
        query: dict[str, str] = {"includeQuantityBasedPartialRefund": "true"}
        found: list[dict[str, Any]] = []
        for _ in range(_VOIDED_PAGES):
            try:
                page = await self._call("GET", f"/purchases/voidedpurchases?{urlencode(query)}")
            except InvalidPurchase as exc:  # a 4xx to our own query: not the purchase's fault
                raise StoreUnavailable(f"the Voided Purchases API refused: {exc}") from exc
            for entry in page.get("voidedPurchases") or []:
                if (
                    (entry.get("orderId") == order)
                    if order
                    else entry.get("purchaseToken") == token
                ):
                    found.append(entry)
            following = (page.get("tokenPagination") or {}).get("nextPageToken")
            if not following:
                break
            query["token"] = str(following)
        else:
            raise StoreUnavailable("the Voided Purchases API listed too many pages")
        if not found:
            raise StoreUnavailable(f"the Voided Purchases API does not list {order or token} yet")
        if any(not entry.get("voidedQuantity") for entry in found):
            return None  # a full refund of the order
        return sum(int(entry["voidedQuantity"]) for entry in found)

    # -- normalization ----------------------------------------------------------------

    def _pack(self, product_id: str, token: str, purchase: dict[str, Any]) -> Purchase:
        purchased = _ms(purchase.get("purchaseTimeMillis"))
        return Purchase(
            store=Store.GOOGLE,
            occurred_at=purchased,
            # the token, not the order id: every purchase has one, test purchases included
            transaction_id=token,
            original_transaction_id=token,
            store_product_id=product_id,
            user_id=_user(purchase.get("obfuscatedExternalAccountId")),
            purchased_at=purchased,
            quantity=int(purchase.get("quantity") or 1),
        )

    def _snapshot(
        self, token: str, sub: dict[str, Any], occurred: datetime
    ) -> SubscriptionSnapshot | None:
        state = sub.get("subscriptionState", "")
        status = _STATES.get(state)
        items = sub.get("lineItems") or []
        if status is None or not items:
            return None  # pending: nothing is paid yet
        item = max(items, key=lambda i: i.get("expiryTime", ""))
        expiry = _time(item.get("expiryTime"))
        if expiry is None:
            return None
        auto_renew = bool((item.get("autoRenewingPlan") or {}).get("autoRenewEnabled", False))
        if state == "SUBSCRIPTION_STATE_CANCELED":
            auto_renew = False
        if status is EntitlementStatus.ACTIVE and "freeTrial" in (item.get("offerPhase") or {}):
            status = EntitlementStatus.TRIAL
        account = (sub.get("externalAccountIdentifiers") or {}).get("obfuscatedExternalAccountId")
        # the order that paid for the current period: the line item's latest successful
        # one. Not the deprecated top-level latestOrderId where the item names one: that
        # is the latest order of any kind, the renewal declined in a grace period too,
        # which would read as a new payment. The period start is left to the core: Play
        # gives none, and moves expiryTime without a payment (grace period, deferral).
        paid_by = item.get("latestSuccessfulOrderId") or sub.get("latestOrderId") or token
        return SubscriptionSnapshot(
            store=Store.GOOGLE,
            occurred_at=occurred,
            original_transaction_id=token,
            transaction_id=str(paid_by),
            store_product_id=str(item.get("productId", "")),
            user_id=_user(account),
            status=status,
            auto_renew=auto_renew,
            period_end=expiry,
            replaces=sub.get("linkedPurchaseToken") or None,
            price=_price(item),
        )
