"""Expo's push API over httpx: ``PushSender`` for the core.

Why our own client and not the official ``exponent-server-sdk`` (Python): the SDK is
synchronous (requests), so every send would block the event loop or need a thread
per batch; it does not gzip request bodies, has no base-URL override for a stand-in,
and leaves batching, backoff and the per-error policy to the caller anyway. The
protocol is two JSON POSTs, so an async httpx client of ~200 lines is less than the
glue the SDK would need.

Protocol (Expo's "Sending notifications with Expo's push API" page):
- ``POST {base}/--/api/v2/push/send``: a JSON array of at most 100 messages
  (``to``, ``title``, ``body``, ``data``, ``sound``, ``channelId``, ...), optionally
  gzip-encoded (``Content-Encoding: gzip``), ``Authorization: Bearer <access token>``
  when push security is on. 200 answers ``{"data": [ticket, ...]}`` in message order:
  ``{"status": "ok", "id": "<receipt id>"}`` or ``{"status": "error", "message",
  "details": {"error": "DeviceNotRegistered" | "MessageTooBig" |
  "MessageRateExceeded" | "InvalidCredentials" | ...}}``. A request-level error
  answers 4xx/5xx with ``{"errors": [{"code", "message"}]}``; 429 and 5xx are retried
  with exponential backoff.
- ``POST {base}/--/api/v2/push/getReceipts`` with ``{"ids": [...]}`` (at most 1,000):
  ``{"data": {"<id>": {"status": "ok"} | {"status": "error", "message", "details":
  {"error": ...}}}}``; ids without a receipt yet are absent.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import msgspec

from genstudio.ports.push import (
    INVALID_CREDENTIALS,
    MESSAGE_RATE_EXCEEDED,
    PushMessage,
    PushReceipt,
    PushResult,
    PushUnavailable,
)

log = logging.getLogger("genstudio.expo")

DEFAULT_BASE_URL = "https://exp.host"
SEND_BATCH = 100
RECEIPTS_BATCH = 1000
#: bodies under this are sent plain: gzip costs more than it saves
GZIP_OVER = 1024
#: Expo accepts at most 600 notifications per second per project; over it, tickets
#: say MessageRateExceeded. We keep under it ourselves (a token bucket per client).
EXPO_RATE = 600.0


class TokenBucket:
    """At most ``rate`` messages a second on average, ``burst`` at once. ``take(n)``
    waits until ``n`` may go; callers are served in arrival order (an asyncio lock),
    so a big batch is not starved by small ones. A request for more than ``burst``
    waits for a full bucket and leaves it in debt, keeping the average rate."""

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._at = clock()
        self._lock = asyncio.Lock()

    async def take(self, n: int) -> None:
        async with self._lock:
            self._refill()
            need = min(n, self.burst)
            if self._tokens < need:
                await self._sleep((need - self._tokens) / self.rate)
                self._refill()
            # taken even a float's hair short; below zero, the next caller waits it off
            self._tokens -= n

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now


class _Details(msgspec.Struct):
    error: str | None = None


class _Ticket(msgspec.Struct):
    status: str
    id: str | None = None
    message: str | None = None
    details: _Details | None = None


class _SendAnswer(msgspec.Struct):
    data: list[_Ticket] | None = None
    errors: list[dict[str, Any]] | None = None


class _Receipt(msgspec.Struct):
    status: str
    message: str | None = None
    details: _Details | None = None


class _ReceiptsAnswer(msgspec.Struct):
    data: dict[str, _Receipt] | None = None
    errors: list[dict[str, Any]] | None = None


_SEND = msgspec.json.Decoder(_SendAnswer)
_RECEIPTS = msgspec.json.Decoder(_ReceiptsAnswer)
_ENCODER = msgspec.json.Encoder()


def _wire(message: PushMessage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "to": message.to,
        "title": message.title,
        "body": message.body,
        "data": message.data,
        "sound": "default",
    }
    if message.badge is not None:
        out["badge"] = message.badge
    if message.channel_id is not None:
        out["channelId"] = message.channel_id
    return out


class ExpoPushClient:
    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        access_token: str | None = None,
        timeout: float = 10.0,
        attempts: int = 5,
        backoff: float = 0.5,
        backoff_cap: float = 30.0,
        concurrency: int = 6,
        rate: float | None = EXPO_RATE,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        """``rate``: messages per second this client sends at most (Expo's per-project
        limit by default; None: unlimited, for a stand-in). Several processes sending
        for one project share Expo's limit: give each its share."""
        headers = {"accept": "application/json", "accept-encoding": "gzip, deflate"}
        if access_token:
            headers["authorization"] = f"Bearer {access_token}"
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, headers=headers
        )
        if client is not None:
            self._client.headers.update(headers)
        self.attempts = attempts
        self.backoff = backoff
        self.backoff_cap = backoff_cap
        # Expo asks senders to keep concurrent connections few (its SDKs use 6)
        self._slots = asyncio.Semaphore(concurrency)
        # a second's worth at once: Expo counts per second, and a full batch must fit
        self._bucket = TokenBucket(rate, max(rate, float(SEND_BATCH))) if rate is not None else None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        batches = [messages[i : i + SEND_BATCH] for i in range(0, len(messages), SEND_BATCH)]
        answers = await asyncio.gather(*(self._send_batch(b) for b in batches))
        return [r for answer in answers for r in answer]

    async def _send_batch(self, batch: Sequence[PushMessage]) -> list[PushResult]:
        """One batch; messages refused for rate are sent again, with backoff, until
        the attempts run out (then their result says ``MessageRateExceeded``)."""
        results: list[PushResult | None] = [None] * len(batch)
        todo = list(range(len(batch)))
        for attempt in range(1, self.attempts + 1):
            answer = await self._post(
                "/--/api/v2/push/send", [_wire(batch[i]) for i in todo], cost=len(todo)
            )
            sent = _SEND.decode(answer)
            tickets = sent.data or []
            if len(tickets) != len(todo):
                raise PushUnavailable(f"Expo answered {len(tickets)} tickets for {len(todo)}")
            again: list[int] = []
            for i, ticket in zip(todo, tickets, strict=True):
                result = _result(batch[i].to, ticket)
                if result.error == MESSAGE_RATE_EXCEEDED and attempt < self.attempts:
                    again.append(i)
                else:
                    if result.error == INVALID_CREDENTIALS:
                        log.error(
                            "operator alert: Expo says InvalidCredentials",
                            extra={"alert": INVALID_CREDENTIALS, "detail": result.message},
                        )
                    results[i] = result
            if not again:
                break
            todo = again
            await asyncio.sleep(self._delay(attempt))
        return [r for r in results if r is not None]

    async def receipts(self, ticket_ids: Sequence[str]) -> list[PushReceipt]:
        out: list[PushReceipt] = []
        for i in range(0, len(ticket_ids), RECEIPTS_BATCH):
            ids = list(ticket_ids[i : i + RECEIPTS_BATCH])
            answer = _RECEIPTS.decode(await self._post("/--/api/v2/push/getReceipts", {"ids": ids}))
            for ticket_id, receipt in (answer.data or {}).items():
                error = receipt.details.error if receipt.details is not None else None
                if receipt.status != "ok" and error is None:
                    error = "unknown"
                out.append(
                    PushReceipt(
                        ticket_id=ticket_id,
                        ok=receipt.status == "ok",
                        error=error,
                        message=receipt.message,
                    )
                )
        return out

    async def _post(self, path: str, payload: object, cost: int = 0) -> bytes:
        """POST with backoff on network errors, 429 and 5xx; raises PushUnavailable
        when the attempts run out, and for a request Expo refuses outright (4xx).
        ``cost``: messages the request sends, taken from the rate's bucket per try
        (a retried request counts again at Expo too)."""
        body = _ENCODER.encode(payload)
        headers = {"content-type": "application/json"}
        if len(body) > GZIP_OVER:
            body = gzip.compress(body, compresslevel=5)
            headers["content-encoding"] = "gzip"
        last = "no attempt"
        for attempt in range(1, self.attempts + 1):
            if cost and self._bucket is not None:
                await self._bucket.take(cost)
            try:
                async with self._slots:
                    response = await self._client.post(path, content=body, headers=headers)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
                retry_after = None
            else:
                if response.status_code == 200:
                    return response.content
                last = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code != 429 and response.status_code < 500:
                    if response.status_code in (401, 403):
                        log.error(
                            "operator alert: Expo refused the access token",
                            extra={"alert": INVALID_CREDENTIALS, "detail": last},
                        )
                    raise PushUnavailable(last)
                retry_after = _seconds(response.headers.get("retry-after"))
            if attempt < self.attempts:
                await asyncio.sleep(max(retry_after or 0.0, self._delay(attempt)))
        log.warning("Expo unavailable", extra={"path": path, "detail": last})
        raise PushUnavailable(last)

    def _delay(self, attempt: int) -> float:
        # exponential with full jitter
        return random.uniform(0, min(self.backoff_cap, self.backoff * 2 ** (attempt - 1)))


def _result(token: str, ticket: _Ticket) -> PushResult:
    if ticket.status == "ok" and ticket.id:
        return PushResult(token=token, ticket_id=ticket.id)
    error = ticket.details.error if ticket.details is not None else None
    return PushResult(token=token, error=error or "unknown", message=ticket.message)


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else min(60.0, float(value))
    except ValueError:
        return None
