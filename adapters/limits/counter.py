"""``ports.limits.RateCounter`` on the `limits` package (alisaifee/limits).

Why `limits` and not Litestar's ``RateLimitMiddleware``: Litestar's middleware has one
budget per app and identifies a client by IP address (or a callable), stores a fixed
window in its own store, and answers its own 429 with the old ``RateLimit-Limit``
headers; ours needs budgets per operation class and per tier, both a user and an IP
counted, our problem+json, and the draft's ``RateLimit`` / ``RateLimit-Policy``
fields. `limits` gives exactly the counting: a moving window (every request's time
kept, so a budget of N never admits N+1 in any window, unlike a fixed window's
double burst at its edge), atomic on Redis (one Lua script per hit), the same API
over an in-process memory store for the embedded default. Its storage for Redis
runs on redis-py's asyncio client (``implementation="redispy"``) over the pool of
the process's one client (``entrypoints.runtime.open_redis``): no second pool.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import Redis

from genstudio.core.model.limits import Budget, Usage

#: the prefix of every counter's key in Redis
KEY_PREFIX = "genstudio:rate"


class LimitsCounter:
    """A moving-window counter over one `limits` storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self._limiter = MovingWindowRateLimiter(storage)
        self._items: dict[Budget, RateLimitItemPerSecond] = {}

    def _item(self, budget: Budget) -> RateLimitItemPerSecond:
        item = self._items.get(budget)
        if item is None:
            item = self._items[budget] = RateLimitItemPerSecond(
                budget.amount, budget.seconds, namespace="genstudio"
            )
        return item

    async def hit(self, key: str, budget: Budget) -> Usage:
        item = self._item(budget)
        try:
            allowed = await self._limiter.hit(item, key)
            stats = await self._limiter.get_window_stats(item, key)
        except StorageError as exc:  # wrap_exceptions: the store's own error inside
            raise ConnectionError(f"rate counter store: {exc.storage_error}") from exc
        return Usage(allowed, stats.remaining, _seconds_until(stats.reset_time))

    async def peek(self, key: str, budget: Budget) -> Usage:
        item = self._item(budget)
        try:
            stats = await self._limiter.get_window_stats(item, key)
        except StorageError as exc:
            raise ConnectionError(f"rate counter store: {exc.storage_error}") from exc
        return Usage(stats.remaining > 0, stats.remaining, _seconds_until(stats.reset_time))


def _seconds_until(when: float) -> int:
    return max(0, math.ceil(when - time.time()))


def memory_counter() -> LimitsCounter:
    """In-process counting: the embedded default (one process serves everything)."""
    return LimitsCounter(MemoryStorage(wrap_exceptions=True))


def redis_counter(client: Redis) -> LimitsCounter:
    """Counting in Redis, shared by every API process, on ``client``'s pool."""
    storage = RedisStorage(
        "async+redis://",
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix=KEY_PREFIX,
        connection_pool=client.connection_pool,  # type: ignore[arg-type]
    )
    return LimitsCounter(storage)
