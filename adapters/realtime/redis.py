"""Realtime across processes on Redis streams (our own, not Litestar's channels).

Why not ``litestar.channels`` with ``RedisChannelsStreamBackend`` (checked in Litestar
2.25's source): its reader XREADs every subscribed channel's stream in one call,
blocking ``stream_sleep_no_subscriptions`` ms (default 1) before it looks again, so with
one channel per user, 1,000 connected users mean an XREAD naming 1,000 keys about every
millisecond on every API process; a channel subscribed later is read from id 0 (its
whole history re-sent as new); ``get_history`` returns the last N messages without
their ids, so a client cannot resume from "the last event I saw"; and its backlog
strategies drop messages, not the slow client. What we need is small:

- ``publish`` runs one Lua script: XADD to the user's stream (``MAXLEN`` = history,
  expiring after ``history_ttl``: the replay source) and XADD of the same event, with
  the user's stream id as its id, to one fan-out stream (``MAXLEN ~ 10000``) in the
  same step, so the id a client sees live is the id it resumes from.
- every API process runs one reader: ``XREAD BLOCK`` on the fan-out stream from the
  last id it read, handing each event to its own connections of that user. A Redis
  blip loses nothing within the fan-out stream's length: the reader resumes from its
  last id.
- a publish is queued and sent in the background: every publish of one turn of the
  event loop goes in one pipelined round trip, so an after-commit effect (a submission,
  a progress report) never waits on Redis; the queue is bounded (``MAX_PENDING``),
  beyond it events are dropped and logged, as the port allows.

It uses the process's one shared Redis client (``entrypoints.runtime.open_redis``,
2 s socket timeout, so the reader blocks 1 s at a time); the reader holds one of that
client's pooled connections while it waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from genstudio.adapters.realtime.hub import Event, RealtimeHub, Subscription, encode_payload

log = logging.getLogger("genstudio.realtime")

#: one stream every API process reads
FANOUT_STREAM = "genstudio:realtime"
#: a user's recent events, for replays: ``genstudio:realtime:user:<id>``
USER_STREAM = "genstudio:realtime:user:"
#: the fan-out stream's approximate length: how long a reader may be away from Redis
FANOUT_LENGTH = 10_000
#: publishes waiting to be sent; more are dropped (Redis unreachable for long)
MAX_PENDING = 10_000
#: how long one XREAD waits for an event (under the shared client's 2 s socket timeout)
BLOCK_MS = 1000

_PUBLISH = """
local id = redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[1], '*', 't', ARGV[4], 'd', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'u', ARGV[6], 'i', id,
           't', ARGV[4], 'd', ARGV[5])
return id
"""


class RedisRealtime(RealtimeHub):
    def __init__(
        self,
        redis: Redis,
        *,
        queue_limit: int = 256,
        history: int = 100,
        history_ttl: float = 86400,
        prefix: str = "",
    ) -> None:
        super().__init__(queue_limit=queue_limit, history=history, history_ttl=history_ttl)
        self.redis = redis
        self.fanout = prefix + FANOUT_STREAM
        self.user_prefix = prefix + USER_STREAM
        self._script = redis.register_script(_PUBLISH)
        self._pending: list[tuple[uuid.UUID, str, bytes]] = []
        self._flushing: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._started: asyncio.Future[None] | None = None

    async def publish(
        self, user_id: uuid.UUID, event_type: str, payload: Mapping[str, object]
    ) -> None:
        data = encode_payload(payload)
        if len(self._pending) >= MAX_PENDING:
            log.warning("realtime event dropped: too many waiting for Redis")
            return
        self._pending.append((user_id, event_type, data))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for user_id, event_type, data in batch:
                        await self._script(
                            keys=[self.user_prefix + str(user_id), self.fanout],
                            args=[
                                self.history_limit,
                                int(self.history_ttl * 1000),
                                FANOUT_LENGTH,
                                event_type,
                                data,
                                str(user_id),
                            ],
                            client=pipe,
                        )
                    await pipe.execute()
            except Exception as exc:  # at most once: the port never raises for this
                log.warning(
                    "realtime events dropped: Redis failed",
                    extra={"count": len(batch), "error": f"{type(exc).__name__}: {exc}"},
                )

    async def history(self, user_id: uuid.UUID) -> list[Event]:
        # redis-py types stream replies loosely (bytes | str | None): ours are bytes
        entries: Any = await self.redis.xrange(self.user_prefix + str(user_id), "-", "+")
        return [
            Event(id=i.decode(), user_id=user_id, type=f[b"t"].decode(), data=f[b"d"])
            for i, f in entries
        ]

    async def subscribe(
        self, user_id: uuid.UUID, last_event_id: str | None = None
    ) -> tuple[Subscription, bool]:
        await self.start()
        return await super().subscribe(user_id, last_event_id)

    async def start(self) -> None:
        """Start reading the fan-out stream (once; only processes with connections
        need to: a worker only publishes). Returns once the reader knows where the
        stream ends, so nothing published after this returns is missed."""
        if self._reader is None:
            self._started = asyncio.get_running_loop().create_future()
            self._reader = asyncio.create_task(self._read(self._started))
        assert self._started is not None
        await asyncio.shield(self._started)

    async def _read(self, started: asyncio.Future[None]) -> None:
        last = b"0-0"
        while not started.done():
            try:
                tail: Any = await self.redis.xrevrange(self.fanout, "+", "-", count=1)
                last = tail[0][0] if tail else b"0-0"
                started.set_result(None)
            except Exception:
                log.exception("reading the realtime stream's end failed; retrying")
                await asyncio.sleep(0.5)
        while True:
            try:
                answer: Any = await self.redis.xread({self.fanout: last}, count=500, block=BLOCK_MS)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading realtime events failed; retrying")
                await asyncio.sleep(0.5)
                continue
            for _stream, entries in answer or ():
                for entry_id, f in entries:
                    last = entry_id
                    try:
                        event = Event(
                            id=f[b"i"].decode(),
                            user_id=uuid.UUID(f[b"u"].decode()),
                            type=f[b"t"].decode(),
                            data=f[b"d"],
                        )
                    except (KeyError, ValueError):
                        log.warning("malformed realtime entry skipped")
                        continue
                    self.deliver(event)

    async def aclose(self) -> None:
        """Send what is still queued (bounded: 2 s), then stop the reader."""
        if self._flushing is not None and not self._flushing.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._flushing), 2.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
