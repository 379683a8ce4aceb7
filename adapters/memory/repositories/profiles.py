"""Profiles in memory."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import NotFound
from genstudio.core.model.profiles import Profile, SubscriptionTier


class InMemoryProfiles(_Repo):
    async def get(self, user_id: uuid.UUID) -> Profile | None:
        return self._d.profiles.get(user_id)

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        await self._uow.acquire(("profile", user_id))
        profile = self._d.profiles.get(user_id)
        if profile is None:
            profile = Profile(
                id=user_id,
                email=email,
                credits=0,
                subscription_tier=SubscriptionTier.FREE,
                created_at=datetime.now(UTC),
            )
            self._d.profiles[user_id] = profile
        elif profile.email is None and email is not None:
            profile = msgspec.structs.replace(profile, email=email)
            self._d.profiles[user_id] = profile
        return profile

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        profile = self._d.profiles.get(user_id)
        if profile is None:
            raise NotFound(f"no profile {user_id}")
        self._d.profiles[user_id] = msgspec.structs.replace(
            profile,
            subscription_tier=tier,
            subscription_status=status,
            subscription_expires_at=expires_at,
        )
