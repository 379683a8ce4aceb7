"""Push notifications to phones (Expo's push service in production)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

#: Expo's error codes the core acts on (others are kept as text and not retried)
DEVICE_NOT_REGISTERED = "DeviceNotRegistered"
MESSAGE_TOO_BIG = "MessageTooBig"
MESSAGE_RATE_EXCEEDED = "MessageRateExceeded"
INVALID_CREDENTIALS = "InvalidCredentials"


class PushMessage(msgspec.Struct, frozen=True, kw_only=True):
    to: str  # one device's token
    title: str
    body: str
    data: dict[str, str | int | bool | None]  # ids for the app's deep link
    badge: int | None = None
    channel_id: str | None = None  # Android notification channel (the category)


class PushResult(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one message: a ticket id when accepted, else an error code
    (``DeviceNotRegistered``, ``MessageTooBig``, ``MessageRateExceeded`` still after
    the sender's retries, ``InvalidCredentials``, or another code) and its message."""

    token: str
    ticket_id: str | None = None
    error: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.ticket_id is not None


class PushReceipt(msgspec.Struct, frozen=True, kw_only=True):
    ticket_id: str
    ok: bool
    error: str | None = None
    message: str | None = None


class PushUnavailable(Exception):
    """The push service could not be reached or kept refusing (timeouts, 429, 5xx)
    after the sender's own backoff: nothing of the request is known to be sent; try
    the whole batch again later."""


class PushSender(Protocol):
    async def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        """Send ``messages`` (any number: the sender batches), one result per message
        in order. A message the service refused is a result with ``error`` set;
        messages refused for rate (``MessageRateExceeded``) are retried with backoff
        first. Raises PushUnavailable when the service is down or overloaded."""
        ...

    async def receipts(self, ticket_ids: Sequence[str]) -> list[PushReceipt]:
        """Receipts of the given tickets (any number: the sender batches); a ticket
        whose receipt is not ready yet, or no longer kept, is left out. Raises
        PushUnavailable."""
        ...
