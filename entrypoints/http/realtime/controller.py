"""``WS /v1/realtime``: a signed-in app's live events (job progress, balance, inbox).

The token comes in the ``Sec-WebSocket-Protocol`` header (``bearer.<jwt>`` beside
``genstudio.v1``) or in the first message (``{"type": "auth", "token": ...}``), never
in the URL: URLs end up in access logs, so a URL carrying a token is refused before
anything else. A user is subscribed to their own events only (the hub is keyed by the
verified token's user). A reconnecting client sends the last event id it saw
(``?lastEventId=`` or in the auth message) and first receives what it missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect

from genstudio.adapters.realtime import Dropped, Ended, Subscription
from genstudio.core.model.errors import Unauthorized
from genstudio.entrypoints.http.deps import AuthVerifierDep, RealtimeHubDep, SettingsDep
from genstudio.entrypoints.http.realtime.schemas import (
    BEARER_PREFIX,
    PING,
    PROTOCOL,
    TOKEN_PARAMS,
    AuthMessage,
    Close,
    Ready,
)
from genstudio.ports.auth import AuthVerifier, Principal

log = logging.getLogger("genstudio.realtime")

_auth = msgspec.json.Decoder(AuthMessage)
_ready = msgspec.json.Encoder()

#: a send that takes longer than this (a client that stopped reading) drops the client
SEND_TIMEOUT = 10.0


class _Refused(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason[:120]  # a close reason is at most 123 bytes


@websocket("/v1/realtime", name="realtime")
async def realtime(
    socket: WebSocket[Any, Any, Any],
    verifier: AuthVerifierDep,
    realtime_hub: RealtimeHubDep,
    settings: SettingsDep,
) -> None:
    offered: list[str] = list(socket.scope.get("subprotocols") or [])
    await socket.accept(subprotocols=PROTOCOL if PROTOCOL in offered else None)
    try:
        principal, last_event_id = await _authenticate(
            socket, verifier, offered, settings.realtime.auth_timeout
        )
    except _Refused as refused:
        await socket.close(code=refused.code, reason=refused.reason)
        return
    except WebSocketDisconnect:
        return
    user_id = principal.user_id
    subscription, resync = await realtime_hub.subscribe(user_id, last_event_id)
    try:
        await socket.send_text(_ready.encode(Ready(user_id=str(user_id), resync=resync)).decode())
        await _pump(socket, subscription, settings.realtime.heartbeat, principal.expires_at)
    except WebSocketDisconnect:
        pass
    finally:
        realtime_hub.unsubscribe(subscription)


async def _authenticate(
    socket: WebSocket[Any, Any, Any],
    verifier: AuthVerifier,
    offered: list[str],
    auth_timeout: float,
) -> tuple[Principal, str | None]:
    """The verified user and the last event id the client saw. Raises _Refused."""
    if TOKEN_PARAMS.intersection(socket.query_params):
        raise _Refused(
            Close.BAD_REQUEST,
            "a token in the URL is refused: send it in the first message or the "
            "Sec-WebSocket-Protocol header",
        )
    last_event_id = socket.query_params.get("lastEventId") or None
    token = next((p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)), None)
    if token is None:
        try:
            first = await asyncio.wait_for(socket.receive_data(mode="text"), auth_timeout)
        except TimeoutError:
            raise _Refused(Close.AUTH_TIMEOUT, "no auth message in time") from None
        try:
            message = _auth.decode(first)
        except msgspec.ValidationError as exc:
            raise _Refused(Close.BAD_REQUEST, f"the first message must be auth: {exc}") from None
        except msgspec.DecodeError:
            raise _Refused(Close.BAD_REQUEST, "the first message must be JSON") from None
        if message.type != "auth":
            raise _Refused(Close.BAD_REQUEST, "the first message must be {type: auth}")
        token = message.token
        last_event_id = message.last_event_id or last_event_id
    try:
        principal = await verifier.verify(token.strip())
    except Unauthorized as exc:
        raise _Refused(Close.UNAUTHORIZED, str(exc) or "unauthorized") from None
    return principal, last_event_id


async def _pump(
    socket: WebSocket[Any, Any, Any],
    subscription: Subscription,
    heartbeat: float,
    expires_at: float | None,
) -> None:
    """Send events (a ping after ``heartbeat`` seconds without one) until the client
    goes, is dropped for falling behind, or its token expires (closed 4401: the client
    reconnects with a fresh token and ``lastEventId``, and misses nothing); what the
    client sends is read and ignored (it is how a disconnect is noticed)."""
    listening = asyncio.ensure_future(_drain(socket, subscription))
    try:
        while True:
            wait = heartbeat
            if expires_at is not None:
                left = expires_at - time.time()
                if left <= 0:
                    await socket.close(
                        code=Close.UNAUTHORIZED,
                        reason="token expired: reconnect with a fresh one and lastEventId",
                    )
                    return
                wait = min(wait, left)
            try:
                text = await subscription.next(wait)
            except Ended:
                return
            except Dropped:
                log.info("realtime client too slow; dropped")
                await socket.close(
                    code=Close.TOO_SLOW, reason="too slow: reconnect with lastEventId"
                )
                return
            if text is None and expires_at is not None and time.time() >= expires_at:
                continue  # the wait ended at the token's expiry: closed above, no ping
            try:
                await asyncio.wait_for(
                    socket.send_text(PING if text is None else text), SEND_TIMEOUT
                )
            except TimeoutError:
                await socket.close(
                    code=Close.TOO_SLOW, reason="too slow: reconnect with lastEventId"
                )
                return
    finally:
        listening.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await listening


async def _drain(socket: WebSocket[Any, Any, Any], subscription: Subscription) -> None:
    try:
        while True:
            await socket.receive_data(mode="text")
    except WebSocketDisconnect:
        pass
    finally:
        subscription.end()
