"""A user's profile: the app-side extension of a Supabase auth user."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec


class SubscriptionTier(enum.StrEnum):
    FREE = "free"
    PRO = "pro"
    PREMIUM = "premium"


class Profile(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    email: str | None
    credits: int
    subscription_tier: SubscriptionTier
    created_at: datetime
    subscription_expires_at: datetime | None = None
    subscription_status: str | None = None  # core.store_events.EntitlementStatus
