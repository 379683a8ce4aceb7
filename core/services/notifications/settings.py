"""The user's side of notifications: preferences, the inbox, push tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.notifications import (
    Category,
    Channel,
    Notification,
    Platform,
    Preferences,
    PushToken,
    QuietHours,
    check_language,
    check_push_token,
    check_time_zone,
    default_preferences,
)
from genstudio.ports.clock import Clock
from genstudio.ports.unit_of_work import UnitOfWorkFactory

UNCHANGED = msgspec.UNSET


class PreferencesChange(msgspec.Struct, frozen=True, kw_only=True):
    """A PATCH: absent fields stay as they are; ``quiet_hours`` None turns them off."""

    channels: Mapping[Category, Mapping[Channel, bool]] = msgspec.field(default_factory=dict)
    quiet_hours: QuietHours | msgspec.UnsetType | None = msgspec.UNSET
    time_zone: str | msgspec.UnsetType = msgspec.UNSET
    language: str | msgspec.UnsetType = msgspec.UNSET


class InboxPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Notification]
    next_before: tuple[datetime, uuid.UUID] | None
    unread: int


class NotificationSettings:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self.uow_factory = uow_factory
        self.clock = clock

    async def preferences(self, user_id: uuid.UUID) -> Preferences:
        async with self.uow_factory() as uow:
            return await uow.notifications.preferences(user_id) or default_preferences(user_id)

    async def change_preferences(
        self, user_id: uuid.UUID, change: PreferencesChange
    ) -> Preferences:
        """Raises InvalidInput naming ``timeZone`` or ``language``."""
        if not isinstance(change.time_zone, msgspec.UnsetType):
            check_time_zone(change.time_zone)
        if not isinstance(change.language, msgspec.UnsetType):
            check_language(change.language)
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, None)
            current = await uow.notifications.preferences(user_id) or default_preferences(user_id)
            channels = {c: dict(v) for c, v in current.channels.items()}
            for category, chosen in change.channels.items():
                channels.setdefault(category, {}).update(chosen)
            updated = Preferences(
                user_id=user_id,
                channels=channels,
                quiet_hours=current.quiet_hours
                if isinstance(change.quiet_hours, msgspec.UnsetType)
                else change.quiet_hours,
                time_zone=current.time_zone
                if isinstance(change.time_zone, msgspec.UnsetType)
                else change.time_zone,
                language=current.language
                if isinstance(change.language, msgspec.UnsetType)
                else change.language,
                updated_at=self.clock.now(),
            )
            await uow.notifications.save_preferences(updated)
            await uow.commit()
        return updated

    async def inbox(
        self, user_id: uuid.UUID, *, before: tuple[datetime, uuid.UUID] | None, limit: int
    ) -> InboxPage:
        if not 1 <= limit <= 100:
            raise InvalidInput("limit must be 1-100", field="limit")
        async with self.uow_factory() as uow:
            items = await uow.notifications.inbox(user_id, before=before, limit=limit + 1)
            unread = await uow.notifications.unread_count(user_id)
        more = len(items) > limit
        items = items[:limit]
        last = items[-1] if more else None
        return InboxPage(
            items=items,
            next_before=(last.updated_at, last.id) if last is not None else None,
            unread=unread,
        )

    async def unread_count(self, user_id: uuid.UUID) -> int:
        async with self.uow_factory() as uow:
            return await uow.notifications.unread_count(user_id)

    async def mark_read(self, user_id: uuid.UUID, ids: Sequence[uuid.UUID] | None) -> int:
        async with self.uow_factory() as uow:
            changed = await uow.notifications.mark_read(user_id, ids, self.clock.now())
            await uow.commit()
        return changed

    async def register_token(
        self,
        user_id: uuid.UUID,
        *,
        token: str,
        platform: str,
        device_id: str,
        app_version: str | None,
    ) -> PushToken:
        """Raises InvalidInput naming ``token``, ``platform`` or ``deviceId``."""
        check_push_token(token)
        try:
            kind = Platform(platform)
        except ValueError:
            raise InvalidInput("platform must be ios or android", field="platform") from None
        if not 1 <= len(device_id) <= 200:
            raise InvalidInput("deviceId must be 1-200 characters", field="deviceId")
        if app_version is not None and not 1 <= len(app_version) <= 50:
            raise InvalidInput("appVersion must be 1-50 characters", field="appVersion")
        now = self.clock.now()
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, None)
            existing = await uow.push_tokens.get(token)
            registered = PushToken(
                token=token,
                user_id=user_id,
                platform=kind,
                device_id=device_id,
                app_version=app_version,
                active=True,
                created_at=existing.created_at if existing is not None else now,
                updated_at=now,
            )
            await uow.push_tokens.register(registered)
            await uow.commit()
        return registered

    async def remove_token(self, user_id: uuid.UUID, token: str) -> None:
        """Raises NotFound when the token is not the user's (another user's reads as
        missing)."""
        async with self.uow_factory() as uow:
            if not await uow.push_tokens.remove(user_id, token):
                raise NotFound("no such push token")
            await uow.commit()
