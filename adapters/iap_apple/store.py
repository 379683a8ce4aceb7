"""``ports.stores.AppleStore`` over Apple's ``SignedDataVerifier``.

Every JWS (the app's signed transaction, a notification's signed payload and the
transaction and renewal info inside it, the Server API's answers) is verified the
same way: ES256 over an x5c chain of three that ends at one of the configured
roots, the leaf and intermediate carrying Apple's OIDs, valid at the data's
``signedDate`` (or now, with online checks, which also ask Apple's OCSP responder),
for the configured bundle id and environment.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import msgspec
from appstoreserverlibrary.api_client import APIException
from appstoreserverlibrary.models.Environment import Environment
from appstoreserverlibrary.models.JWSRenewalInfoDecodedPayload import (
    JWSRenewalInfoDecodedPayload,
)
from appstoreserverlibrary.models.JWSTransactionDecodedPayload import (
    JWSTransactionDecodedPayload,
)
from appstoreserverlibrary.signed_data_verifier import (
    SignedDataVerifier,
    VerificationException,
    VerificationStatus,
)

from genstudio.adapters.iap_apple.client import AppStoreServerApi
from genstudio.core.model.errors import InvalidPurchase, StoreUnavailable
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import Store
from genstudio.core.model.purchases.store_events import (
    WHOLE_SHARE,
    EntitlementStatus,
    Informational,
    Purchase,
    RefundReversal,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.ports.stores import StoreNotification

log = logging.getLogger("genstudio.iap.apple")
_T = TypeVar("_T")

#: the App Store Server API's subscription status codes
_STATUS = {
    1: EntitlementStatus.ACTIVE,
    2: EntitlementStatus.EXPIRED,
    3: EntitlementStatus.BILLING_RETRY,
    4: EntitlementStatus.GRACE_PERIOD,
    5: EntitlementStatus.REVOKED,
}

#: notification types that say what a subscription is now (its status comes with it)
_SUBSCRIPTION_NEWS = {
    "SUBSCRIBED",
    "DID_RENEW",
    "DID_FAIL_TO_RENEW",
    "GRACE_PERIOD_EXPIRED",
    "EXPIRED",
    "DID_CHANGE_RENEWAL_STATUS",
    "DID_CHANGE_RENEWAL_PREF",
    "OFFER_REDEEMED",
    "RENEWAL_EXTENDED",
    "PRICE_INCREASE",
    "REFUND_DECLINED",
}

#: where a notification carries no status, what its type implies
_IMPLIED = {
    "DID_FAIL_TO_RENEW": EntitlementStatus.BILLING_RETRY,
    "GRACE_PERIOD_EXPIRED": EntitlementStatus.BILLING_RETRY,
    "EXPIRED": EntitlementStatus.EXPIRED,
}

_AUTO_RENEWABLE = "Auto-Renewable Subscription"
#: what the production verifier says of data signed in the sandbox: the environment,
#: or (for notifications, which carry no appAppleId there) the app identifier
_OTHER_ENVIRONMENT = {
    VerificationStatus.INVALID_ENVIRONMENT,
    VerificationStatus.INVALID_APP_IDENTIFIER,
}
#: revocationType of a partial refund (others: REFUND_FULL, FAMILY_REVOKE)
_PRORATED = "REFUND_PRORATED"


def load_root_certificates(spec: str) -> list[bytes]:
    """``APPLE_ROOT_CERTIFICATES``: comma-separated paths to DER or PEM files, or
    base64 DER; the roots a chain must end at (Apple Root CA - G3 in production)."""
    roots: list[bytes] = []
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        path = Path(item)
        if len(item) < 512 and path.is_file():
            raw = path.read_bytes()
            if b"-----BEGIN CERTIFICATE-----" in raw:
                body = b"".join(
                    line for line in raw.splitlines() if line and not line.startswith(b"-----")
                )
                raw = base64.b64decode(body)
            roots.append(raw)
            continue
        try:
            roots.append(base64.b64decode(item, validate=True))
        except binascii.Error:
            raise ValueError(
                f"APPLE_ROOT_CERTIFICATES: {item!r} is neither a file nor base64 DER"
            ) from None
    return roots


def _ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, UTC)


def _user(token: str | None) -> uuid.UUID | None:
    if not token:
        return None
    try:
        return uuid.UUID(token)
    except ValueError:
        return None


def _revoked_share(tx: JWSTransactionDecodedPayload) -> int | None:
    """The share of the transaction refunded (``revocationPercentage``, milliunits,
    for all its ``quantity``: the transaction's state, so every refund so far), where
    ``revocationType`` says it is prorated; None: all of it."""
    if tx.rawRevocationType != _PRORATED or tx.revocationPercentage is None:
        return None
    return min(max(tx.revocationPercentage, 0), WHOLE_SHARE)


#: a family member's access to what another bought (inAppOwnershipType): no sale
_FAMILY_SHARED = "FAMILY_SHARED"


def _price(tx: JWSTransactionDecodedPayload) -> Price | None:
    """What the transaction was sold for: ``price`` (milliunits of ``currency``, every
    item of the quantity and an offer's discount included) in micros. None where Apple
    states none, and for a family member's shared access (the purchaser's own
    transaction carries the sale; counting the share too would count it twice)."""
    if tx.rawInAppOwnershipType == _FAMILY_SHARED or not isinstance(tx.price, int):
        return None
    return Price.of(tx.price * 1000, tx.currency)


class AppleAppStore:
    def __init__(
        self,
        *,
        root_certificates: list[bytes],
        bundle_id: str,
        environment: str,
        app_apple_id: int | None = None,
        online_checks: bool = True,
        api: AppStoreServerApi | None = None,
        sandbox_in_production: str = "grant",
    ) -> None:
        self._environment = Environment(environment)
        if self._environment not in (Environment.PRODUCTION, Environment.SANDBOX):
            # Apple's library does not check signatures at all for Xcode or
            # LocalTesting: a configuration slip would let anyone forge purchases
            raise ValueError(f"APPLE_ENVIRONMENT must be Production or Sandbox, not {environment}")
        if sandbox_in_production not in ("grant", "refuse"):
            raise ValueError(
                f"APPLE_SANDBOX_IN_PRODUCTION must be grant or refuse, not {sandbox_in_production}"
            )
        self._verifier = SignedDataVerifier(
            root_certificates, online_checks, self._environment, bundle_id, app_apple_id
        )
        # Apple's advice: verify against production first, then against the sandbox
        # (App Review buys with Sandbox accounts in production builds)
        self._sandbox_verifier = (
            SignedDataVerifier(
                root_certificates, online_checks, Environment.SANDBOX, bundle_id, app_apple_id
            )
            if self._environment is Environment.PRODUCTION
            else None
        )
        self._sandbox_grants = sandbox_in_production == "grant"
        self._api = api

    async def aclose(self) -> None:
        if self._api is not None:
            await self._api.aclose()

    # -- verification -------------------------------------------------------------------

    async def _verify(self, method: str, data: str, what: str) -> Any:
        """The verified payload: against the configured environment, and in production
        against the sandbox after that (what Apple's library says of the environment
        is only ever checked after the signature chain)."""
        try:
            return await self._verify_with(self._verifier, method, data, what)
        except InvalidPurchase as exc:
            sandbox = self._sandbox_verifier
            if sandbox is None or not isinstance(exc.__cause__, VerificationException):
                raise
            if exc.__cause__.status not in _OTHER_ENVIRONMENT:
                raise
            try:
                payload = await self._verify_with(sandbox, method, data, what)
            except InvalidPurchase:
                raise exc from exc.__cause__
        if not self._sandbox_grants:
            raise InvalidPurchase("Sandbox purchases are not honoured by this service", field=what)
        return payload

    async def _verify_with(
        self, verifier: SignedDataVerifier, method: str, data: str, what: str
    ) -> Any:
        try:
            # CPU-bound (and, with online checks, blocking I/O): off the event loop
            return await asyncio.to_thread(getattr(verifier, method), data)
        except VerificationException as exc:
            status = exc.status.name.lower()
            if status == "retryable_verification_failure":
                raise StoreUnavailable(f"Apple could not confirm the {what} now") from exc
            raise InvalidPurchase(f"the {what} did not verify ({status})", field=what) from exc

    async def _transaction(self, signed: str) -> JWSTransactionDecodedPayload:
        tx: JWSTransactionDecodedPayload = await self._verify(
            "verify_and_decode_signed_transaction", signed, "signedTransaction"
        )
        if not tx.transactionId or not tx.productId or tx.purchaseDate is None:
            raise InvalidPurchase("the signed transaction lacks its ids", field="signedTransaction")
        return tx

    async def _renewal(self, signed: str | None) -> JWSRenewalInfoDecodedPayload | None:
        if not signed:
            return None
        info: JWSRenewalInfoDecodedPayload = await self._verify(
            "verify_and_decode_renewal_info", signed, "signedRenewalInfo"
        )
        return info

    # -- genstudio.ports.stores.AppleStore --------------------------------------------------------

    async def verify_purchase(self, signed_transaction: str) -> Purchase | SubscriptionSnapshot:
        tx = await self._transaction(signed_transaction)
        if _user(tx.appAccountToken) is None:
            raise InvalidPurchase(
                "the purchase carries no appAccountToken naming the account",
                field="appAccountToken",
            )
        if tx.rawType != _AUTO_RENEWABLE:
            # the app's JWS is as it was at purchase: the Server API says whether it was
            # refunded since (a refund whose notification came before this claim)
            current = await self._current(tx.transactionId or "")
            if any(t is not None and t.revocationDate is not None for t in (tx, current)):
                raise InvalidPurchase(
                    "the App Store refunded or revoked this purchase", field="signedTransaction"
                )
            return self._purchase(tx)
        fresh = await self._reread(tx.originalTransactionId or tx.transactionId or "")
        if fresh is not None:
            latest, renewal, status = fresh
            # the account is the one the app bound this purchase to
            return self._snapshot(latest, renewal, status, user=_user(tx.appAccountToken))
        return self._snapshot(tx, None, None, user=_user(tx.appAccountToken))

    async def _current(self, transaction_id: str) -> JWSTransactionDecodedPayload | None:
        """The transaction as the App Store Server API has it now, or None when the API
        is not configured or does not answer (the app's JWS then stands)."""
        api = self._api
        if api is None or not transaction_id:
            return None
        response = await self._asked(
            lambda: api.get_transaction_info(transaction_id), transaction_id=transaction_id
        )
        if response is None or not response.signedTransactionInfo:
            return None
        return await self._transaction(response.signedTransactionInfo)

    async def _asked(self, call: Callable[[], Awaitable[_T]], **about: str) -> _T | None:
        """The App Store Server API's answer, or None when it does not answer (the
        app's JWS then stands)."""
        try:
            return await call()
        except (APIException, httpx.HTTPError) as exc:
            log.warning(
                "App Store Server API unavailable; using the signed transaction alone",
                extra={**about, "error": repr(exc)},
            )
            return None

    async def _reread(
        self, original: str
    ) -> (
        tuple[JWSTransactionDecodedPayload, JWSRenewalInfoDecodedPayload | None, int | None] | None
    ):
        """The subscription's current state from the App Store Server API, or None
        when it is not configured or does not answer (the app's JWS then stands)."""
        api = self._api
        if api is None or not original:
            return None
        response = await self._asked(
            lambda: api.get_all_subscription_statuses(original), original_transaction_id=original
        )
        if response is None:
            return None
        for group in response.data or []:
            for item in group.lastTransactions or []:
                if item.originalTransactionId == original and item.signedTransactionInfo:
                    latest = await self._transaction(item.signedTransactionInfo)
                    renewal = await self._renewal(item.signedRenewalInfo)
                    return latest, renewal, item.rawStatus
        return None

    async def verify_notification(self, signed_payload: str) -> StoreNotification:
        payload = await self._verify(
            "verify_and_decode_notification", signed_payload, "signedPayload"
        )
        kind = payload.rawNotificationType or "UNKNOWN"
        if payload.rawSubtype:
            kind = f"{kind}:{payload.rawSubtype}"
        notification_id = payload.notificationUUID
        if not notification_id:
            raise InvalidPurchase("the notification has no notificationUUID", field="signedPayload")
        events = await self._events(payload, kind)
        return StoreNotification(
            store=Store.APPLE, notification_id=notification_id, kind=kind, events=events
        )

    async def _events(self, payload: Any, kind: str) -> list[StoreEvent]:
        occurred = _ms(payload.signedDate) or datetime.now(UTC)
        ntype = payload.rawNotificationType or ""
        data = payload.data
        if data is None or not data.signedTransactionInfo:
            return [Informational(store=Store.APPLE, occurred_at=occurred, kind=kind)]
        tx = await self._transaction(data.signedTransactionInfo)
        renewal = await self._renewal(data.signedRenewalInfo)
        tx_id, original = tx.transactionId or "", tx.originalTransactionId
        if ntype in ("REFUND", "REVOKE"):
            reason = RevocationReason.REFUND if ntype == "REFUND" else RevocationReason.REVOKE
            return [
                Revocation(
                    store=Store.APPLE,
                    occurred_at=occurred,
                    transaction_id=tx_id,
                    original_transaction_id=original,
                    reason=reason,
                    revoked_share=_revoked_share(tx),
                )
            ]
        if ntype == "REFUND_REVERSED":
            return [
                RefundReversal(
                    store=Store.APPLE,
                    occurred_at=occurred,
                    transaction_id=tx_id,
                    original_transaction_id=original,
                )
            ]
        if tx.rawType == _AUTO_RENEWABLE and ntype in _SUBSCRIPTION_NEWS:
            status = data.rawStatus
            snapshot = self._snapshot(
                tx, renewal, status, user=_user(tx.appAccountToken), implied=_IMPLIED.get(ntype)
            )
            return [msgspec.structs.replace(snapshot, occurred_at=occurred)]
        if ntype == "ONE_TIME_CHARGE" and tx.rawType != _AUTO_RENEWABLE:
            return [msgspec.structs.replace(self._purchase(tx), occurred_at=occurred)]
        # TEST, CONSUMPTION_REQUEST, METADATA_UPDATE, ...: nothing moves
        return [Informational(store=Store.APPLE, occurred_at=occurred, kind=kind)]

    # -- normalization ----------------------------------------------------------------

    def _purchase(self, tx: JWSTransactionDecodedPayload) -> Purchase:
        purchased = _ms(tx.purchaseDate)
        assert purchased is not None
        return Purchase(
            store=Store.APPLE,
            occurred_at=_ms(tx.signedDate) or purchased,
            transaction_id=tx.transactionId or "",
            original_transaction_id=tx.originalTransactionId or tx.transactionId or "",
            store_product_id=tx.productId or "",
            user_id=_user(tx.appAccountToken),
            purchased_at=purchased,
            quantity=tx.quantity or 1,
            environment=tx.rawEnvironment,
            price=_price(tx),
        )

    def _snapshot(
        self,
        tx: JWSTransactionDecodedPayload,
        renewal: JWSRenewalInfoDecodedPayload | None,
        raw_status: int | None,
        *,
        user: uuid.UUID | None,
        implied: EntitlementStatus | None = None,
    ) -> SubscriptionSnapshot:
        now = datetime.now(UTC)
        expires = _ms(tx.expiresDate)
        if expires is None:
            raise InvalidPurchase("a subscription transaction without expiresDate")
        if raw_status in _STATUS:
            status = _STATUS[raw_status]
        elif implied is not None:
            status = implied
        elif tx.revocationDate is not None:
            status = EntitlementStatus.REVOKED
        else:
            status = EntitlementStatus.ACTIVE if expires > now else EntitlementStatus.EXPIRED
        if (
            status is EntitlementStatus.BILLING_RETRY
            and renewal is not None
            and renewal.gracePeriodExpiresDate is not None
            and (_ms(renewal.gracePeriodExpiresDate) or now) > now
        ):
            status = EntitlementStatus.GRACE_PERIOD
        if status is EntitlementStatus.ACTIVE and tx.rawOfferDiscountType == "FREE_TRIAL":
            status = EntitlementStatus.TRIAL
        auto_renew = True if renewal is None else renewal.rawAutoRenewStatus == 1
        return SubscriptionSnapshot(
            store=Store.APPLE,
            occurred_at=_ms(tx.signedDate) or now,
            original_transaction_id=tx.originalTransactionId or tx.transactionId or "",
            transaction_id=tx.transactionId or "",
            store_product_id=tx.productId or "",
            user_id=user,
            status=status,
            auto_renew=auto_renew,
            period_start=_ms(tx.purchaseDate),
            period_end=expires,
            environment=tx.rawEnvironment,
            price=_price(tx),
        )
