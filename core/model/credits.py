"""The credits ledger: entries, lots and holds, and the pure rules that move credits.

Invariants (checked by the property tests):
- the balance is the sum of a user's entries and equals the sum of the remaining
  amounts of the user's lots; it is never negative;
- a lot that still owes credits (``Lot.owed``) has none left to take them from;
- a hold ends exactly once: settled (the credits are spent) or released (returned
  to the lots they came from).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime

import msgspec

from genstudio.core.model.clock import utc
from genstudio.core.model.errors import IllegalTransition, InsufficientCredits, InvalidInput


class EntryKind(enum.StrEnum):
    GRANT = "grant"  # operator or promotional credits (may expire)
    PURCHASE = "purchase"  # a verified store purchase (never expires)
    ALLOWANCE = "allowance"  # a subscription period's credits (expires at period end)
    HOLD = "hold"  # credits reserved for a job at submission (negative)
    SETTLE = "settle"  # the hold became a spend (zero: the credits already left)
    RELEASE = "release"  # the hold returned to its lots (positive)
    REFUND = "refund"  # credits given back for a settled spend (positive)
    EXPIRY = "expiry"  # an expired lot's unspent remainder (negative)
    ADJUSTMENT = "adjustment"  # an operator's correction (either sign)
    CLAWBACK = "clawback"  # a refunded or revoked purchase's unspent credits (negative)


#: kinds that create a new lot when positive
LOT_KINDS = frozenset(
    {
        EntryKind.GRANT,
        EntryKind.PURCHASE,
        EntryKind.ALLOWANCE,
        EntryKind.REFUND,
        EntryKind.ADJUSTMENT,
    }
)


class HoldStatus(enum.StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"


class LedgerEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: EntryKind
    amount: int  # signed
    balance_after: int
    reference: str  # what moved the credits: a job id, a store transaction, an operator note
    idempotency_key: str  # unique per user: the same key never moves credits twice
    created_at: datetime
    lot_id: uuid.UUID | None = None
    hold_id: uuid.UUID | None = None


class Lot(msgspec.Struct, frozen=True, kw_only=True):
    """Credits that arrived together and may expire together."""

    id: uuid.UUID
    user_id: uuid.UUID
    source: EntryKind
    amount: int
    remaining: int
    created_at: datetime
    expires_at: datetime | None = None
    reference: str = ""
    #: credits a partial refund of the purchase claimed while jobs held them: taken
    #: from the lot as those holds are released (``release_hold``), never from a
    #: settled one (spent credits stay spent); so a lot owing credits has none left
    owed: int = 0

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Allocation(msgspec.Struct, frozen=True, array_like=True):
    lot_id: uuid.UUID
    amount: int


class Hold(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    amount: int
    allocations: tuple[Allocation, ...]
    status: HoldStatus
    reference: str
    created_at: datetime
    closed_at: datetime | None = None

    def close(self, status: HoldStatus, now: datetime) -> Hold:
        if self.status is not HoldStatus.OPEN:
            raise IllegalTransition(f"hold {self.id} is already {self.status}")
        return msgspec.structs.replace(self, status=status, closed_at=now)


def spending_order(lots: list[Lot]) -> list[Lot]:
    """Soonest-expiring first; lots that never expire last; older first within a tie."""
    far = datetime.max.replace(tzinfo=UTC)

    def key(lot: Lot) -> tuple[int, datetime, datetime]:
        if lot.expires_at is None:
            return (1, far, utc(lot.created_at))
        return (0, utc(lot.expires_at), utc(lot.created_at))

    return sorted(lots, key=key)


def allocate(lots: list[Lot], amount: int, now: datetime) -> tuple[Allocation, ...]:
    """Take ``amount`` from live lots, soonest-expiring first.

    Raises InsufficientCredits when the live lots do not cover it.
    """
    if amount <= 0:
        raise InvalidInput("an amount to take must be positive", field="amount")
    live = [lot for lot in spending_order(lots) if lot.remaining > 0 and not lot.is_expired(now)]
    available = sum(lot.remaining for lot in live)
    if available < amount:
        raise InsufficientCredits(required=amount, available=available)
    left = amount
    taken: list[Allocation] = []
    for lot in live:
        if left == 0:
            break
        part = min(lot.remaining, left)
        taken.append(Allocation(lot.id, part))
        left -= part
    return tuple(taken)


#: the ledger's amounts and balances are 32-bit integers (Postgres ``integer``): no
#: grant, and no balance, may go beyond (issue #19: a huge grant was a database error)
MAX_CREDITS = 2**31 - 1


def validate_grant(amount: int, kind: EntryKind) -> None:
    if kind not in LOT_KINDS:
        raise InvalidInput(f"{kind} does not create credits", field="kind")
    if amount <= 0:
        raise InvalidInput("a grant must be a positive number of credits", field="amount")
    if amount > MAX_CREDITS:
        raise InvalidInput(f"a grant is at most {MAX_CREDITS} credits", field="amount")


def check_balance_bound(balance: int, amount: int) -> None:
    """Refuse a move that would take a balance past ``MAX_CREDITS``."""
    if balance + amount > MAX_CREDITS:
        raise InvalidInput(
            f"the balance would be {balance + amount}, over the most an account holds"
            f" ({MAX_CREDITS})",
            field="amount",
        )
