"""The account's JSON: profile, balance, ledger pages."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.credits import LedgerEntry
from genstudio.core.model.profiles import Profile


class MeResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    email: str | None
    credits: int
    subscription_tier: str
    subscription_expires_at: datetime | None

    @classmethod
    def of(cls, profile: Profile, credits: int) -> MeResponse:
        return cls(
            id=profile.id,
            email=profile.email,
            credits=credits,
            subscription_tier=profile.subscription_tier.value,
            subscription_expires_at=profile.subscription_expires_at,
        )


class LedgerItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    amount: int
    balance_after: int
    reference: str
    created_at: datetime

    @classmethod
    def of(cls, e: LedgerEntry) -> LedgerItem:
        return cls(
            id=e.id,
            kind=e.kind.value,
            amount=e.amount,
            balance_after=e.balance_after,
            reference=e.reference,
            created_at=e.created_at,
        )


class LedgerPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[LedgerItem]
    next_cursor: str | None
