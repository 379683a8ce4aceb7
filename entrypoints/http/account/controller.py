"""The signed-in user's account: profile, balance and ledger."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import QueryParameter

from genstudio.core.model.errors import InvalidInput
from genstudio.core.services import queries
from genstudio.core.services.credits import open_account
from genstudio.entrypoints.http.account.schemas import LedgerItem, LedgerPage, MeResponse
from genstudio.entrypoints.http.deps import (
    ClockDep,
    PrincipalDep,
    RealtimeHubDep,
    UowFactoryDep,
)


def encode_cursor(created_at: datetime, entry_id: uuid.UUID) -> str:
    raw = msgspec.json.encode([created_at.isoformat(), str(entry_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, entry_id = msgspec.json.decode(raw, type=tuple[datetime, uuid.UUID])
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise InvalidInput("the cursor is not one this API returned", field="cursor") from None
    return at, entry_id


class AccountController(Controller):
    path = "/v1/me"
    tags = ["account"]

    @get("/", summary="The signed-in user's profile and credit balance")
    async def me(
        self,
        principal: PrincipalDep,
        uow_factory: UowFactoryDep,
        clock: ClockDep,
        realtime_hub: RealtimeHubDep,
    ) -> MeResponse:
        profile = await open_account(
            uow_factory,
            user_id=principal.user_id,
            email=principal.email,
            now=clock.now(),
            realtime=realtime_hub,  # a sweep of expired credits, to open apps (issue #18)
        )
        return MeResponse.of(profile, profile.credits)

    @get("/credits", summary="The credit ledger, newest first (cursor-paginated)")
    async def credits(
        self,
        principal: PrincipalDep,
        uow_factory: UowFactoryDep,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> LedgerPage:
        before = decode_cursor(cursor) if cursor else None
        found = await queries.ledger_page(
            uow_factory, principal.user_id, limit=limit, before=before
        )
        page = found.entries
        more = found.more and page
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if more else None
        return LedgerPage(items=[LedgerItem.of(e) for e in page], next_cursor=next_cursor)
