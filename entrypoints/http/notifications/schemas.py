"""Notification routes' bodies (camelCase)."""

from __future__ import annotations

import uuid
from datetime import datetime, time

import msgspec

from genstudio.core.model.notifications import (
    Category,
    Channel,
    Notification,
    Preferences,
    PushToken,
)
from genstudio.ports.notification_texts import Text


class RegisterTokenRequest(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True
):
    token: str
    platform: str
    device_id: str
    app_version: str | None = None


class PushTokenResponse(msgspec.Struct, rename="camel", kw_only=True):
    token: str
    platform: str
    device_id: str
    app_version: str | None
    active: bool
    updated_at: datetime

    @classmethod
    def of(cls, t: PushToken) -> PushTokenResponse:
        return cls(
            token=t.token,
            platform=t.platform.value,
            device_id=t.device_id,
            app_version=t.app_version,
            active=t.active,
            updated_at=t.updated_at,
        )


class QuietHoursBody(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    start: time
    end: time


class NotificationPreferencesPatch(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True
):
    channels: dict[Category, dict[Channel, bool]] | msgspec.UnsetType = msgspec.UNSET
    quiet_hours: QuietHoursBody | msgspec.UnsetType | None = msgspec.UNSET
    time_zone: str | msgspec.UnsetType = msgspec.UNSET
    language: str | msgspec.UnsetType = msgspec.UNSET


class PreferencesResponse(msgspec.Struct, rename="camel", kw_only=True):
    channels: dict[str, dict[str, bool]]
    quiet_hours: QuietHoursBody | None
    time_zone: str
    language: str

    @classmethod
    def of(cls, p: Preferences) -> PreferencesResponse:
        quiet = p.quiet_hours
        return cls(
            channels={c.value: {ch.value: p.allows(c, ch) for ch in Channel} for c in Category},
            quiet_hours=None if quiet is None else QuietHoursBody(start=quiet.start, end=quiet.end),
            time_zone=p.time_zone,
            language=p.language,
        )


class NotificationItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    category: str
    title: str
    body: str
    data: dict[str, str | int | bool | None]
    count: int
    read: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, n: Notification, text: Text) -> NotificationItem:
        return cls(
            id=n.id,
            kind=n.kind.value,
            category=n.category.value,
            title=text.title,
            body=text.body,
            data=dict(n.data),
            count=n.count,
            read=n.read_at is not None,
            created_at=n.created_at,
            updated_at=n.updated_at,
        )


class NotificationPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[NotificationItem]
    next_cursor: str | None
    unread: int


class UnreadCount(msgspec.Struct, rename="camel", kw_only=True):
    unread: int


class MarkReadRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    ids: list[uuid.UUID] | None = None
    all: bool = False


class MarkReadResponse(msgspec.Struct, rename="camel", kw_only=True):
    marked: int
    unread: int
