"""Push tokens, notification preferences and the inbox (issue #18). Texts are
rendered here, at the edge, in the user's language."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.notifications import QuietHours
from genstudio.core.services.notifications.settings import PreferencesChange
from genstudio.entrypoints.http.bodies import strict_json
from genstudio.entrypoints.http.deps import (
    NotificationSettingsDep,
    NotificationTextsDep,
    PrincipalDep,
)
from genstudio.entrypoints.http.notifications.schemas import (
    MarkReadRequest,
    MarkReadResponse,
    NotificationItem,
    NotificationPage,
    NotificationPreferencesPatch,
    PreferencesResponse,
    PushTokenResponse,
    RegisterTokenRequest,
    UnreadCount,
)


def _cursor(before: tuple[datetime, uuid.UUID] | None) -> str | None:
    if before is None:
        return None
    raw = f"{before[0].isoformat()}|{before[1]}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, ident = raw.split("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except ValueError:
        raise InvalidInput("not a cursor this API gave", field="cursor") from None


class NotificationsController(Controller):
    path = "/v1"
    tags = ["notifications"]

    @post("/push-tokens", status_code=201, summary="Register this device's Expo push token")
    async def register_token(
        self,
        data: JSONBody[RegisterTokenRequest],
        principal: PrincipalDep,
        notification_settings: NotificationSettingsDep,
    ) -> PushTokenResponse:
        token = await notification_settings.register_token(
            principal.user_id,
            token=data.token,
            platform=data.platform,
            device_id=data.device_id,
            app_version=data.app_version,
        )
        return PushTokenResponse.of(token)

    @delete("/push-tokens/{token:str}", status_code=204, summary="Forget a push token")
    async def remove_token(
        self,
        token: FromPath[str],
        principal: PrincipalDep,
        notification_settings: NotificationSettingsDep,
    ) -> None:
        await notification_settings.remove_token(principal.user_id, token)

    @get("/me/notification-preferences", summary="Notification preferences")
    async def preferences(
        self, principal: PrincipalDep, notification_settings: NotificationSettingsDep
    ) -> PreferencesResponse:
        return PreferencesResponse.of(await notification_settings.preferences(principal.user_id))

    @patch("/me/notification-preferences", summary="Change notification preferences")
    async def change_preferences(
        self,
        data: JSONBody[NotificationPreferencesPatch],
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        notification_settings: NotificationSettingsDep,
    ) -> PreferencesResponse:
        # Litestar's conversion is lenient ("push": 0 as false); the body is read once
        data = strict_json(await request.body(), NotificationPreferencesPatch)
        quiet: QuietHours | msgspec.UnsetType | None = msgspec.UNSET
        if data.quiet_hours is None:
            quiet = None
        elif not isinstance(data.quiet_hours, msgspec.UnsetType):
            quiet = QuietHours(start=data.quiet_hours.start, end=data.quiet_hours.end)
        change = PreferencesChange(
            channels={} if isinstance(data.channels, msgspec.UnsetType) else data.channels,
            quiet_hours=quiet,
            time_zone=data.time_zone,
            language=data.language,
        )
        updated = await notification_settings.change_preferences(principal.user_id, change)
        return PreferencesResponse.of(updated)

    @get("/notifications", summary="The inbox, newest first")
    async def inbox(
        self,
        principal: PrincipalDep,
        notification_settings: NotificationSettingsDep,
        notification_texts: NotificationTextsDep,
        cursor: FromQuery[str | None] = None,
        limit: FromQuery[int] = 30,
    ) -> NotificationPage:
        page = await notification_settings.inbox(
            principal.user_id, before=_parse_cursor(cursor), limit=limit
        )
        language = (await notification_settings.preferences(principal.user_id)).language
        return NotificationPage(
            items=[
                NotificationItem.of(n, notification_texts.render(n, language)) for n in page.items
            ],
            next_cursor=_cursor(page.next_before),
            unread=page.unread,
        )

    @get("/notifications/unread-count", summary="How many inbox notifications are unread")
    async def unread(
        self, principal: PrincipalDep, notification_settings: NotificationSettingsDep
    ) -> UnreadCount:
        return UnreadCount(unread=await notification_settings.unread_count(principal.user_id))

    @post("/notifications/read", status_code=200, summary="Mark notifications read (ids or all)")
    async def mark_read(
        self,
        data: JSONBody[MarkReadRequest],
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        notification_settings: NotificationSettingsDep,
    ) -> MarkReadResponse:
        # Litestar's conversion is lenient ("all": 0 as false); the body is read once
        data = strict_json(await request.body(), MarkReadRequest)
        if data.all == (data.ids is not None):
            raise InvalidInput("send either ids or all: true", field="ids")
        marked = await notification_settings.mark_read(
            principal.user_id, None if data.all else data.ids
        )
        unread = await notification_settings.unread_count(principal.user_id)
        return MarkReadResponse(marked=marked, unread=unread)
