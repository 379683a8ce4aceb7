"""Profiles in Postgres."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from psycopg import errors as pg_errors
from sqlalchemy import (
    bindparam,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import Row, _Repository, _utc, _utc_or_none
from genstudio.core.model.errors import NotFound
from genstudio.core.model.profiles import Profile, SubscriptionTier

# --- profiles ---------------------------------------------------------------------------


def _profile(row: Row) -> Profile:
    return Profile(
        id=row["id"],
        email=row["email"],
        credits=row["credits"],
        subscription_tier=SubscriptionTier(row["subscription_tier"]),
        created_at=_utc(row["created_at"]),
        subscription_expires_at=_utc_or_none(row["subscription_expires_at"]),
        subscription_status=row["subscription_status"],
    )


_GET_PROFILE = Compiled(select(t.profiles).where(t.profiles.c.id == bindparam("user_id")))


class SqlProfiles(_Repository):
    async def get(self, user_id: uuid.UUID) -> Profile | None:
        row = await self._sql.one(_GET_PROFILE, {"user_id": user_id})
        return None if row is None else _profile(row)

    async def ensure(self, user_id: uuid.UUID, email: str | None) -> Profile:
        profile = await self.get(user_id)
        if profile is not None:
            if profile.email is None and email is not None:
                await self._conn.execute(
                    update(t.profiles)
                    .where(t.profiles.c.id == user_id, t.profiles.c.email.is_(None))
                    .values(email=email)
                )
                profile = msgspec.structs.replace(profile, email=email)
            return profile
        new_profile = (
            insert(t.profiles)
            .values(id=user_id, email=email)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        try:
            # On Supabase the auth user exists (it signed in to get its token), so
            # this succeeds without touching auth.users, which the app's role may
            # not be allowed to write.
            async with self._conn.begin_nested():
                await self._conn.execute(new_profile)
        except IntegrityError as exc:
            if not isinstance(exc.orig, pg_errors.ForeignKeyViolation):
                raise
            # Plain Postgres (tests, the embedded default): auth.users is our
            # stand-in and the user is created here, as Supabase Auth would have.
            await self._conn.execute(
                insert(t.auth_users)
                .values(id=user_id, email=email)
                .on_conflict_do_nothing(index_elements=["id"])
            )
            await self._conn.execute(new_profile)
        profile = await self.get(user_id)
        assert profile is not None
        return profile

    async def set_subscription(
        self,
        user_id: uuid.UUID,
        *,
        tier: SubscriptionTier,
        status: str | None,
        expires_at: datetime | None,
    ) -> None:
        p = t.profiles.c
        result = await self._conn.execute(
            update(t.profiles)
            .where(p.id == user_id)
            .values(
                subscription_tier=tier.value,
                subscription_status=status,
                subscription_expires_at=expires_at,
            )
            .returning(p.id)
        )
        if result.scalar_one_or_none() is None:
            raise NotFound(f"no profile {user_id}")
