"""Apple, made in the tests: a certificate chain shaped like Apple's, signed StoreKit 2
data, and an App Store Server API stand-in.

``AppleSigner`` makes a root CA (the test configures it as trusted, as production
configures Apple Root CA - G3), an intermediate carrying Apple's WWDR OID
1.2.840.113635.100.6.2.1 and a leaf carrying the App Store receipt-signing OID
1.2.840.113635.100.6.11.1, all ECDSA P-256, and signs JWS (ES256, ``x5c`` of three)
the way the App Store does, so ``SignedDataVerifier`` checks them for real. Its
knobs make the bad cases: another key than the leaf's (forged), a chain from another
root (foreign), a leaf not valid at ``signedDate`` (expired), no Apple OID.

``AppStoreServerStandIn`` serves ``GET /inApps/v1/subscriptions/{id}`` (Get All
Subscription Statuses) and ``GET /inApps/v1/transactions/{id}`` (Get Transaction
Info) from what the test puts in ``subscriptions`` / ``transactions``, after checking
the bearer token (ES256 with the configured App Store Connect key, ``aud``
``appstoreconnect-v1``, the bundle id in ``bid``): 401 otherwise, as Apple answers.
Faults: ``inject(Fail(500))``, ``inject(RateLimit())``, ``inject(Stall(5))``.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from genstudio.testing.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

BUNDLE_ID = "app.genstudio.test"
APP_APPLE_ID = 1234567890
WWDR_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genstudio tests"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        ]
    )


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    oid: x509.ObjectIdentifier | None,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer.subject if issuer else _name(subject))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if oid is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def der_b64(cert: x509.Certificate) -> str:
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()


class AppleSigner:
    """A root, an intermediate and a leaf like Apple's; signs JWS with the leaf."""

    def __init__(
        self,
        *,
        leaf_valid: tuple[datetime, datetime] | None = None,
        apple_oids: bool = True,
    ) -> None:
        far = datetime(2045, 1, 1, tzinfo=UTC)
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert(
            "Test Apple Root CA",
            self.root_key,
            None,
            self.root_key,
            ca=True,
            oid=None,
            not_before=EPOCH,
            not_after=far,
        )
        self.intermediate_key = ec.generate_private_key(ec.SECP256R1())
        self.intermediate = _cert(
            "Test Apple WWDR CA",
            self.intermediate_key,
            self.root,
            self.root_key,
            ca=True,
            oid=WWDR_OID if apple_oids else None,
            not_before=EPOCH,
            not_after=far,
        )
        self.leaf_key = ec.generate_private_key(ec.SECP256R1())
        start, end = leaf_valid or (EPOCH, far)
        self.leaf = _cert(
            "Test Prod ECC Mac App Store and iTunes Store Receipt Signing",
            self.leaf_key,
            self.intermediate,
            self.intermediate_key,
            ca=False,
            oid=LEAF_OID if apple_oids else None,
            not_before=start,
            not_after=end,
        )

    @property
    def root_der(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.DER)

    @property
    def root_b64(self) -> str:
        return der_b64(self.root)

    def sign(
        self, payload: dict[str, Any], *, key: ec.EllipticCurvePrivateKey | None = None
    ) -> str:
        headers = {"x5c": [der_b64(self.leaf), der_b64(self.intermediate), der_b64(self.root)]}
        return jwt.encode(payload, key or self.leaf_key, algorithm="ES256", headers=headers)


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def transaction(
    *,
    product_id: str,
    user: uuid.UUID | None,
    transaction_id: str | None = None,
    original_transaction_id: str | None = None,
    purchased: datetime | None = None,
    expires: datetime | None = None,
    subscription: bool = False,
    signed: datetime | None = None,
    bundle_id: str = BUNDLE_ID,
    environment: str = "Sandbox",
    **extra: Any,
) -> dict[str, Any]:
    """A JWSTransactionDecodedPayload as the App Store signs it."""
    now = datetime.now(UTC)
    purchased = purchased or now
    tx_id = transaction_id or str(uuid.uuid4().int)[:16]
    payload: dict[str, Any] = {
        "transactionId": tx_id,
        "originalTransactionId": original_transaction_id or tx_id,
        "bundleId": bundle_id,
        "productId": product_id,
        "purchaseDate": ms(purchased),
        "originalPurchaseDate": ms(purchased),
        "quantity": 1,
        "type": "Auto-Renewable Subscription" if subscription else "Consumable",
        "inAppOwnershipType": "PURCHASED",
        "signedDate": ms(signed or now),
        "environment": environment,
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 4990,
        "currency": "USD",
    }
    if user is not None:
        payload["appAccountToken"] = str(user)
    if subscription:
        payload["subscriptionGroupIdentifier"] = "21000000"
        payload["expiresDate"] = ms(expires or purchased + timedelta(days=30))
        payload["webOrderLineItemId"] = str(uuid.uuid4().int)[:16]
    payload.update(extra)
    return payload


def refunded(
    tx: dict[str, Any], *, at: datetime, percentage: int | None = None, reason: int = 0
) -> dict[str, Any]:
    """``tx`` as the App Store signs it once refunded: ``revocationType`` REFUND_FULL,
    or REFUND_PRORATED with ``revocationPercentage`` (milliunits of the whole
    transaction, all its ``quantity``: 33333 is 1 of 3 items, 100000 all)."""
    revoked = {**tx, "revocationDate": ms(at), "revocationReason": reason, "signedDate": ms(at)}
    if percentage is None:
        revoked["revocationType"] = "REFUND_FULL"
    else:
        revoked["revocationType"] = "REFUND_PRORATED"
        revoked["revocationPercentage"] = percentage
    return revoked


def renewal(
    *,
    product_id: str,
    original_transaction_id: str,
    auto_renew: bool = True,
    grace_until: datetime | None = None,
    environment: str = "Sandbox",
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "originalTransactionId": original_transaction_id,
        "autoRenewProductId": product_id,
        "productId": product_id,
        "autoRenewStatus": 1 if auto_renew else 0,
        "signedDate": ms(datetime.now(UTC)),
        "environment": environment,
        "recentSubscriptionStartDate": ms(datetime.now(UTC)),
    }
    if grace_until is not None:
        payload["gracePeriodExpiresDate"] = ms(grace_until)
        payload["isInBillingRetryPeriod"] = True
    return payload


def notification(
    signer: AppleSigner,
    notification_type: str,
    *,
    subtype: str | None = None,
    tx: dict[str, Any] | None = None,
    renewal_info: dict[str, Any] | None = None,
    status: int | None = None,
    notification_uuid: str | None = None,
    bundle_id: str = BUNDLE_ID,
    environment: str = "Sandbox",
    signed: datetime | None = None,
) -> tuple[str, str]:
    """(signedPayload, notificationUUID) of an App Store Server Notification V2."""
    note_id = notification_uuid or str(uuid.uuid4())
    data: dict[str, Any] = {
        "appAppleId": APP_APPLE_ID,
        "bundleId": bundle_id,
        "bundleVersion": "1",
        "environment": environment,
    }
    if tx is not None:
        data["signedTransactionInfo"] = signer.sign(tx)
    if renewal_info is not None:
        data["signedRenewalInfo"] = signer.sign(renewal_info)
    if status is not None:
        data["status"] = status
    payload: dict[str, Any] = {
        "notificationType": notification_type,
        "notificationUUID": note_id,
        "data": data,
        "version": "2.0",
        "signedDate": ms(signed or datetime.now(UTC)),
    }
    if subtype:
        payload["subtype"] = subtype
    return signer.sign(payload), note_id


@dataclass
class SubscriptionState:
    status: int  # 1 active, 2 expired, 3 billing retry, 4 grace period, 5 revoked
    transaction: dict[str, Any]
    renewal: dict[str, Any] | None = None


@dataclass
class _Keys:
    public_key: ec.EllipticCurvePublicKey
    key_id: str
    issuer_id: str


class AppStoreServerStandIn(LoopbackStandIn):
    name = "app-store-server-api"

    def __init__(
        self, signer: AppleSigner, *, key_id: str = "TESTKEY123", issuer_id: str | None = None
    ) -> None:
        super().__init__()
        self.signer = signer
        self.api_key = ec.generate_private_key(ec.SECP256R1())
        self.keys = _Keys(self.api_key.public_key(), key_id, issuer_id or str(uuid.uuid4()))
        self.subscriptions: dict[str, SubscriptionState] = {}
        self.transactions: dict[str, dict[str, Any]] = {}
        self.seen_tokens: list[dict[str, Any]] = []

    @property
    def private_key_pem(self) -> bytes:
        return self.api_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply({"errorCode": status * 10000, "errorMessage": message}, status, headers)

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token, self.keys.public_key, algorithms=["ES256"], audience="appstoreconnect-v1"
            )
        except jwt.PyJWTError:
            return False
        self.seen_tokens.append(claims)
        return (
            header.get("kid") == self.keys.key_id
            and claims.get("iss") == self.keys.issuer_id
            and claims.get("bid") == BUNDLE_ID
            and claims.get("exp", 0) > time.time()
        )

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if not self._authorized(request):
            return Reply(401, b"Unauthenticated", "text/plain")
        prefix_status = "/inApps/v1/subscriptions/"
        prefix_tx = "/inApps/v1/transactions/"
        if request.method == "GET" and request.path.startswith(prefix_status):
            wanted = request.path[len(prefix_status) :]
            items = []
            for original, state in self.subscriptions.items():
                if wanted in (original, state.transaction.get("transactionId")):
                    item: dict[str, Any] = {
                        "originalTransactionId": original,
                        "status": state.status,
                        "signedTransactionInfo": self.signer.sign(state.transaction),
                    }
                    if state.renewal is not None:
                        item["signedRenewalInfo"] = self.signer.sign(state.renewal)
                    items.append(item)
            if not items:
                return self.error_reply(404, "Transaction id not found.", {})
            return json_reply(
                {
                    "environment": "Sandbox",
                    "bundleId": BUNDLE_ID,
                    "appAppleId": APP_APPLE_ID,
                    "data": [
                        {"subscriptionGroupIdentifier": "21000000", "lastTransactions": items}
                    ],
                }
            )
        if request.method == "GET" and request.path.startswith(prefix_tx):
            tx = self.transactions.get(request.path[len(prefix_tx) :])
            if tx is None:
                return self.error_reply(404, "Transaction id not found.", {})
            return json_reply({"signedTransactionInfo": self.signer.sign(tx)})
        return self.error_reply(404, "Not found", {})
