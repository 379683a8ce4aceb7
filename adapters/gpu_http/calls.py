"""HTTP calls to a GPU provider's API: timeouts, 429 backoff, client-side rate limits.

Every failure to get an answer becomes ``ProviderUnavailable`` with a message that
says which provider, which call and why; the worker treats it as an
infrastructure failure (retry or fail over).
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from genstudio.ports.gpu import ProviderUnavailable

Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """At most ``rate`` calls a second on average, bursts of up to ``burst``.

    ``acquire`` waits (in order of arrival) until a token is free. One bucket per
    provider endpoint: Runpod limits each endpoint's /run and /status separately.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)


@dataclass(frozen=True)
class Backoff:
    """Retries after a 429: exponential with jitter, at least what Retry-After asks.

    ``retries`` further attempts after the first; a Retry-After longer than
    ``max_retry_after`` seconds is not waited for (the call fails at once, and the
    job can go to another provider instead).
    """

    retries: int = 4
    base: float = 0.5
    cap: float = 8.0
    max_retry_after: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        ceiling = min(self.cap, self.base * 2**attempt)
        jittered = rng.uniform(ceiling / 2, ceiling)  # "equal jitter": never near zero
        return max(jittered, retry_after or 0.0)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpCaller:
    """One provider's API calls: auth headers, a deadline per attempt, 429 retries.

    ``call`` returns the response for 2xx and for 4xx answers the caller interprets
    (404, 410, 400, ...); it raises ``ProviderUnavailable`` for timeouts, connection
    errors, 5xx, refused credentials (401/403, naming ``credentials_hint``) and
    429s that outlast the backoff.
    """

    def __init__(
        self,
        name: str,
        *,
        headers: Mapping[str, str],
        timeout: float,
        client: httpx.AsyncClient | None = None,
        backoff: Backoff = Backoff(),
        credentials_hint: str = "the API credentials",
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.name = name
        self.timeout = timeout
        self.backoff = backoff
        self.credentials_hint = credentials_hint
        self._headers = dict(headers)
        self._owns_client = client is None
        # Auth goes per request, never on the client: output downloads share it.
        self.client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def call(
        self,
        method: str,
        url: str,
        *,
        what: str,
        json: Any = None,
        bucket: TokenBucket | None = None,
    ) -> httpx.Response:
        attempt = 0
        while True:
            if bucket is not None:
                await bucket.acquire()
            response = await self._once(method, url, what=what, json=json)
            if response.status_code != 429:
                return self._check(response, what)
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if wait is not None and wait > self.backoff.max_retry_after:
                raise ProviderUnavailable(
                    f"{self.name}: {what} rate limited (HTTP 429), retry after {wait:.0f}s"
                )
            if attempt >= self.backoff.retries:
                raise ProviderUnavailable(
                    f"{self.name}: {what} still rate limited (HTTP 429) after "
                    f"{attempt + 1} attempts"
                )
            await self._sleep(self.backoff.delay(attempt, wait, self._rng))
            attempt += 1

    async def _once(self, method: str, url: str, *, what: str, json: Any) -> httpx.Response:
        try:
            # httpx's timeout bounds each phase; this bounds the whole exchange, so a
            # server that trickles its answer cannot hold the worker past the deadline.
            async with asyncio.timeout(self.timeout):
                return await self.client.request(
                    method, url, json=json, headers=self._headers, timeout=self.timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            raise ProviderUnavailable(
                f"{self.name}: {what} timed out after {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{self.name}: {what} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _check(self, response: httpx.Response, what: str) -> httpx.Response:
        status = response.status_code
        if status in (401, 403):
            raise ProviderUnavailable(
                f"{self.name}: {what} was refused (HTTP {status}): check {self.credentials_hint}"
            )
        if status >= 500:
            raise ProviderUnavailable(
                f"{self.name}: {what} answered HTTP {status}: {_snippet(response)}"
            )
        return response


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:limit] or response.reason_phrase
