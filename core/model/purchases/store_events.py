"""The one shape both stores' news takes once verified.

The Apple and Google adapters turn what they verified (a StoreKit 2 transaction, an
App Store Server Notification, a Play Developer API answer to an RTDN) into these
events; the core decides what each does to entitlements and credits. Times are
aware UTC; ``occurred_at`` is when the store says it happened (signedDate,
eventTime), used to ignore stale news delivered out of order.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.purchases.prices import Price
from genstudio.core.model.purchases.products import Store


class EntitlementStatus(enum.StrEnum):
    ACTIVE = "active"
    TRIAL = "trial"
    AUTO_RENEW_OFF = "auto_renew_off"  # paid up, ends at period end
    GRACE_PERIOD = "grace_period"  # a renewal failed; the store keeps access on while it retries
    BILLING_RETRY = "billing_retry"  # a renewal failed; no access while the store retries
    ON_HOLD = "on_hold"  # Google's account hold: like billing retry
    PAUSED = "paused"  # Google: the user paused the plan
    EXPIRED = "expired"
    REVOKED = "revoked"  # taken away by the store (family sharing ended, fraud)
    REFUNDED = "refunded"
    #: an upgrade or downgrade replaced it (Google's ``linkedPurchaseToken``): over for
    #: good, whatever the store still says about it
    REPLACED = "replaced"


#: statuses that give access (and the plan's queue tier)
ENTITLED = frozenset(
    {
        EntitlementStatus.ACTIVE,
        EntitlementStatus.TRIAL,
        EntitlementStatus.AUTO_RENEW_OFF,
        EntitlementStatus.GRACE_PERIOD,
    }
)


class RevocationReason(enum.StrEnum):
    REFUND = "refund"
    REVOKE = "revoke"


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    store: Store
    occurred_at: datetime
    #: the store environment the news was signed in (Apple: ``Production`` or
    #: ``Sandbox``); None where the store does not say
    environment: str | None = None


class Purchase(_Event, frozen=True, tag="purchase"):
    """A consumable credit pack was bought."""

    transaction_id: str
    original_transaction_id: str
    store_product_id: str
    #: the account the app bound the purchase to (appAccountToken,
    #: obfuscatedExternalAccountId); None where the store did not say
    user_id: uuid.UUID | None
    purchased_at: datetime
    quantity: int = 1
    #: what the store states it was sold for, all items together (Apple); None where
    #: it states none (Google's one-time products)
    price: Price | None = None


class SubscriptionSnapshot(_Event, frozen=True, tag="subscription"):
    """The store's current view of one subscription (its whole renewal chain)."""

    original_transaction_id: str
    #: the transaction that paid for the current period (Apple transactionId, Google
    #: the line item's latestSuccessfulOrderId): a new allowance period needs a new one
    transaction_id: str
    store_product_id: str
    user_id: uuid.UUID | None
    #: never AUTO_RENEW_OFF, REFUNDED or REPLACED: those the core derives
    status: EntitlementStatus
    auto_renew: bool
    period_end: datetime
    #: None: the core counts one billing period back from ``period_end``
    period_start: datetime | None = None
    #: the original id of the subscription this one replaces (Google's
    #: ``linkedPurchaseToken`` on an upgrade or downgrade): that one ends here
    replaces: str | None = None
    #: what the store states for the payment ``transaction_id`` (``prices``); None
    #: where it states none
    price: Price | None = None


#: Apple's ``revocationPercentage`` of a whole transaction: 100% in milliunits
WHOLE_SHARE = 100_000


class Revocation(_Event, frozen=True, tag="revocation"):
    """A transaction was refunded or revoked, all of it or part: the unspent credits of
    what the store took back go back.

    A part is always what the store has taken back *in all so far*, every partial
    refund of the transaction together, never one refund's increment: the core claws
    back the difference with what it already took, so news applied twice, or a later
    refund that repeats an earlier one, cannot take the same credits twice. Neither
    field set: the whole transaction.
    """

    transaction_id: str
    original_transaction_id: str | None
    reason: RevocationReason
    #: items of a multi-quantity pack revoked so far (Google: the ``voidedQuantity``
    #: of every quantity-based partial refund of the order, summed)
    revoked_quantity: int | None = None
    #: the share of the transaction revoked so far, in thousandths of a percent
    #: (Apple's ``revocationPercentage``: ``WHOLE_SHARE`` is all of it)
    revoked_share: int | None = None

    def __post_init__(self) -> None:
        if self.revoked_quantity is not None and self.revoked_share is not None:
            raise InvalidInput("a revocation names a quantity or a share, not both")
        if self.revoked_quantity is not None and self.revoked_quantity < 1:
            raise InvalidInput("a partial revocation revokes at least one item")
        if self.revoked_share is not None and not 0 <= self.revoked_share <= WHOLE_SHARE:
            raise InvalidInput("a revoked share is between 0 and 100000 milliunits")

    @property
    def whole(self) -> bool:
        return self.revoked_quantity is None and (
            self.revoked_share is None or self.revoked_share >= WHOLE_SHARE
        )


class RefundReversal(_Event, frozen=True, tag="refund_reversed"):
    """The store undid a refund: what was clawed back returns."""

    transaction_id: str
    original_transaction_id: str | None


class Informational(_Event, frozen=True, tag="info"):
    """News that moves neither money nor access (TEST, CONSUMPTION_REQUEST, ...)."""

    kind: str


StoreEvent = Purchase | SubscriptionSnapshot | Revocation | RefundReversal | Informational
