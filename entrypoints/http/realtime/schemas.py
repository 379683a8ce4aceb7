"""What ``WS /v1/realtime`` exchanges (docs/api.md, "Realtime")."""

from __future__ import annotations

import msgspec

#: the subprotocol the server answers with; the client offers it beside ``bearer.<token>``
PROTOCOL = "genstudio.v1"
#: the prefix of the subprotocol that carries the token (``bearer.<jwt>``)
BEARER_PREFIX = "bearer."
#: query parameters that would put a credential in the URL (and so in access logs)
TOKEN_PARAMS = frozenset({"token", "access_token", "accessToken", "jwt", "authorization"})


class Close:
    """Close codes (and their reasons) of the realtime socket."""

    BAD_REQUEST = 4400  # the first message is not an auth message, or a token in the URL
    UNAUTHORIZED = 4401  # the token is missing, forged or expired
    AUTH_TIMEOUT = 4408  # no auth message within GENSTUDIO_REALTIME_AUTH_TIMEOUT
    TOO_SLOW = 1013  # ("try again later") the client fell behind: reconnect with lastEventId


class AuthMessage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The first message when the token is not in ``Sec-WebSocket-Protocol``."""

    type: str
    token: str
    last_event_id: str | None = None


class Ready(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Sent once authenticated; ``resync``: events may have been missed that the history
    no longer holds (reload state over HTTP)."""

    type: str = "ready"
    user_id: str
    resync: bool = False


PING = '{"type":"ping"}'
