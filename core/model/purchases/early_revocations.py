"""Refunds and revocations that came before their purchase was claimed (issue #19).

A user could keep a purchase's signed data, get the purchase refunded, and redeem it
afterwards: the refund's news found no transaction, was answered
``unknown_transaction`` and forgotten. Such news is now kept; a later claim of that
transaction is refused while it stands, and a reversal that happened after it lifts it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from genstudio.core.model.purchases.products import Store
from genstudio.core.model.purchases.store_events import RevocationReason


class EarlyRevocation(msgspec.Struct, frozen=True, kw_only=True):
    """The latest refund news (or its reversal) about a transaction nobody had claimed."""

    store: Store
    transaction_id: str
    original_transaction_id: str | None
    reason: RevocationReason
    occurred_at: datetime
    recorded_at: datetime
    #: a refund reversal that happened after the refund: the purchase stands again
    reversed: bool = False

    def newer(self, other: EarlyRevocation) -> EarlyRevocation:
        """Whichever of the two news happened last (the stores deliver out of order)."""
        return other if other.occurred_at >= self.occurred_at else self

    def matches(self, transaction_id: str) -> bool:
        """Whether a claim of ``transaction_id`` is the purchase this news is about (a
        Google refund names the order and the purchase token; a pack is claimed by
        its token), as the refund would have found the claimed transaction."""
        return transaction_id in (self.transaction_id, self.original_transaction_id)
