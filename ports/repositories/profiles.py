"""Profiles: a user's account row (balance, tier)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from genstudio.core.model.profiles import Profile, SubscriptionTier


class ProfileRepository(Protocol):
    async def get(self, user_id: uuid.UUID) -> Profile | None: ...

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        """Return the user's profile, creating it (zero credits, free tier) if missing.
        A profile made without an email (by an operator's grant, a store notification)
        takes ``email`` when one is given."""
        ...

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        """Store what the user's entitlements say (tier, status, period end)."""
        ...
