"""The job queue on taskiq-redis's RedisStreamBroker (acknowledged delivery).

One stream per job kind (``genstudio:jobs:image``, ``...:video``, ``...:training``)
so kinds can get their own workers, plus ``genstudio:maintenance`` for the
reconciler. A message carries a job id and its kind and only wakes a worker up:
the worker claims the most urgent due job of that kind from Postgres (priority,
aging and per-user limits live there), so a message delivered twice, late, or
never (the reconciler re-sends what the database says is due) does no harm.

Redelivery settings, knowing taskiq-redis #101 and #131:
- ``idle_timeout``: a message taken by a worker that died is claimed by another
  after this long. Jobs can run longer than any sensible value (#101: the message
  of a long job gets redelivered while its worker is still alive), so the job's
  lease in Postgres, not the message, decides who works on it: a redelivered
  message finds the job leased by a live worker and does nothing.
- ``unacknowledged_lock_timeout``: the broker's XAUTOCLAIM lock has no expiry by
  default, so a worker SIGKILLed while holding it blocks reclaiming forever (#131).
  We give it one.
- taskiq-redis 1.2.x only reclaims when new messages arrive; the reconciler's
  periodic wake-ups guarantee traffic, and recover jobs from Postgres anyway.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import msgspec
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage, AsyncBroker, BrokerMessage, TaskiqMiddleware
from taskiq.exceptions import SendTaskError
from taskiq.formatters.proxy_formatter import ProxyFormatter
from taskiq.kicker import AsyncKicker
from taskiq.labels import prepare_label
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisStreamBroker

from genstudio.core.model.ids import new_id

log = logging.getLogger("genstudio.queue")

PROCESS_JOB_TASK = "genstudio.process_job"
RECONCILE_TASK = "genstudio.reconcile"
KINDS = ("image", "edit", "video", "training")
MAINTENANCE_STREAM = "genstudio:maintenance"

IDLE_TIMEOUT_MS = 300_000  # 5 minutes: longer than an image job, and harmless if shorter
AUTOCLAIM_LOCK_TIMEOUT_S = 30.0
#: a wake-up not in Redis after this long fails (the reconciler sends it again later)
SEND_TIMEOUT_S = 2.0


def stream_for(kind: str, prefix: str = "genstudio:jobs") -> str:
    return f"{prefix}:{kind}"


class ResilientStreamBroker(RedisStreamBroker):
    """RedisStreamBroker that survives Redis restarts and flushes.

    A restarted (non-persistent) or flushed Redis loses the streams and their
    consumer group; the stock listener then fails on every XREADGROUP with NOGROUP
    (or, blocked on a stream being deleted, with UNBLOCKED) and the worker dies. This one re-declares the group and listens again; when
    Redis is unreachable it waits and retries instead of crashing.
    """

    retry_delay = 1.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sender: AbstractConnection | None = None  # the XADDs' own connection
        self._send_lock = asyncio.Lock()  # one batch on it at a time: answers in order
        # the XADDs asked for in this turn of the event loop, and when they were sent
        self._batch: tuple[list[tuple[str, bytes]], asyncio.Future[None]] | None = None
        self._sending: set[asyncio.Task[None]] = set()  # strong references to the sends
        self.batches = 0  # round trips that sent messages, and how many they carried
        self.batched = 0

    async def kick(self, message: BrokerMessage) -> None:
        """XADD, as the stock broker does, but on one connection kept for the broker's
        life, and with the messages kicked in one turn of the event loop (concurrent
        submissions) sent together in one round trip. It returns when its message is
        in Redis, or raises what sending it raised (within ``SEND_TIMEOUT_S``)."""
        stream = message.labels.get("queue_name") or self.queue_name
        if self._batch is None:
            loop = asyncio.get_running_loop()
            self._batch = ([], loop.create_future())
            loop.call_soon(self._send_batch)
        entries, sent = self._batch
        entries.append((stream, message.message))
        await asyncio.shield(sent)  # one caller cancelled must not cancel the others

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            task = asyncio.ensure_future(self._xadd(*batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _command(self, stream: str, data: bytes) -> tuple[Any, ...]:
        """XADD as redis-py's ``xadd`` spells it, with this broker's trimming."""
        trim: tuple[Any, ...] = ()
        if self.maxlen is not None:
            trim = ("MAXLEN", "~", self.maxlen) if self.approximate else ("MAXLEN", self.maxlen)
        return ("XADD", stream, *trim, "*", b"data", data)

    async def _xadd(self, entries: list[tuple[str, bytes]], sent: asyncio.Future[None]) -> None:
        """One round trip for a batch, straight on a redis-py connection: the client's
        command path (its pool checkout, retries and response callbacks per command)
        cost ~40 us of CPU more per XADD than the round trip itself
        (docs/performance.md). Any failure drops the connection (the answers of the
        rest of the batch would be out of step); the next batch connects again."""
        try:
            async with self._send_lock, asyncio.timeout(SEND_TIMEOUT_S):
                if self._sender is None:
                    # redis-py leaves ConnectionPool.make_connection unannotated
                    self._sender = self.connection_pool.make_connection()  # type: ignore[no-untyped-call]
                sender = self._sender
                try:
                    await sender.send_packed_command(
                        sender.pack_commands([self._command(*entry) for entry in entries]),
                        check_health=False,
                    )
                    for _ in entries:
                        await sender.read_response()  # raises a refusal (ResponseError)
                except BaseException:
                    await sender.disconnect(nowait=True)
                    raise
        except asyncio.CancelledError:
            sent.cancel()
            raise
        except Exception as exc:
            if not sent.done():
                sent.set_exception(exc)
                sent.exception()  # retrieved: a batch nobody awaits any more is no error
        else:
            self.batches += 1
            self.batched += len(entries)
            if not sent.done():
                sent.set_result(None)

    async def shutdown(self) -> None:
        self._send_batch()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        sender, self._sender = self._sender, None
        if sender is not None:
            await sender.disconnect()
        await super().shutdown()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        while True:
            try:
                async for message in super().listen():
                    yield message
            except ResponseError as exc:
                # NOGROUP: the group is gone (Redis restarted empty, or flushed between
                # reads); UNBLOCKED: the stream was deleted (a flush) while this
                # listener was blocked reading it (Redis 7)
                if "NOGROUP" not in str(exc) and "UNBLOCKED" not in str(exc):
                    raise
                log.warning("consumer group missing (Redis restarted or flushed); declaring it")
                await self._declare_group_quietly()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                log.warning("Redis unavailable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(self.retry_delay)
                await self._declare_group_quietly()

    async def _declare_group_quietly(self) -> None:
        try:
            await self._declare_consumer_group()
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await asyncio.sleep(self.retry_delay)


def make_stream_broker(
    url: str,
    *,
    kinds: Iterable[str] = KINDS,
    maintenance: bool = True,
    prefix: str = "genstudio:jobs",
    idle_timeout_ms: int = IDLE_TIMEOUT_MS,
    lock_timeout_s: float = AUTOCLAIM_LOCK_TIMEOUT_S,
) -> ResilientStreamBroker:
    """A broker that sends to any stream (by label) and listens on ``kinds``' streams."""
    streams = [stream_for(k, prefix) for k in kinds]
    if maintenance:
        streams.append(MAINTENANCE_STREAM)
    if not streams:
        raise ValueError("a worker needs at least one stream")
    broker = ResilientStreamBroker(
        url,
        queue_name=streams[0],
        additional_streams={s: ">" for s in streams[1:]},
        consumer_group_name="genstudio-workers",
        # read a stream from its start when the group is first created, so
        # messages sent before any worker existed are not skipped ("$")
        consumer_id="0",
        idle_timeout=idle_timeout_ms,
        unacknowledged_lock_timeout=lock_timeout_s,
        xread_block=1000,
        maxlen=100_000,
    )
    return broker.with_id_generator(_task_id)


def _task_id() -> str:
    """taskiq's default (``uuid4().hex``), from the ids' buffered randomness."""
    return new_id().hex


class _TaskiqMessage(msgspec.Struct):
    """taskiq's ``TaskiqMessage`` as its ``ProxyFormatter`` and ``JSONSerializer``
    write it (the fields in their order); a test reads ours back with taskiq's."""

    task_id: str
    task_name: str
    labels: dict[str, str]
    labels_types: dict[str, int]
    args: list[str]
    kwargs: dict[str, str]


_encode = msgspec.json.Encoder().encode


class TaskiqJobQueue:
    """Wake-ups as taskiq ``process_job`` messages.

    The message is written here, as taskiq's kicker would write it, when the broker
    formats messages the default way (``ProxyFormatter`` over ``JSONSerializer``)
    and has no middleware that changes what is sent: the kicker builds a pydantic
    model, dumps it and serializes it with the standard json module (~30 us of CPU
    per submission, docs/performance.md). Any other broker gets the kicker."""

    def __init__(self, broker: AsyncBroker, *, prefix: str = "genstudio:jobs") -> None:
        self.broker = broker
        self.prefix = prefix
        self._labels: dict[tuple[str, int], tuple[dict[str, str], dict[str, int]]] = {}

    def _written_here(self) -> bool:
        broker = self.broker
        return (
            type(broker.formatter) is ProxyFormatter
            and type(broker.serializer) is JSONSerializer
            and not any(
                type(m).pre_send is not TaskiqMiddleware.pre_send
                or type(m).post_send is not TaskiqMiddleware.post_send
                for m in broker.middlewares
            )
        )

    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        stream = stream_for(kind, self.prefix)
        if not self._written_here():
            kicker: AsyncKicker[[str, str], None] = AsyncKicker(
                task_name=PROCESS_JOB_TASK,
                broker=self.broker,
                labels={"queue_name": stream, "priority": priority},
            )
            await kicker.kiq(str(job_id), kind)
            return
        labels = self._labels.get((stream, priority))
        if labels is None:
            labels = self._labels[stream, priority] = _as_sent(
                {"queue_name": stream, "priority": priority}
            )
        task_id = self.broker.id_generator()
        text, types = labels
        message = _TaskiqMessage(task_id, PROCESS_JOB_TASK, text, types, [str(job_id), kind], {})
        try:
            await self.broker.kick(
                BrokerMessage(
                    task_id=task_id,
                    task_name=PROCESS_JOB_TASK,
                    message=_encode(message),
                    labels=text,
                )
            )
        except Exception as exc:
            raise SendTaskError from exc  # as the kicker raises it


def _as_sent(labels: dict[str, Any]) -> tuple[dict[str, str], dict[str, int]]:
    """Labels as taskiq sends them: each value as text, with its type's code."""
    text: dict[str, str] = {}
    types: dict[str, int] = {}
    for name, value in labels.items():
        text[name], types[name] = prepare_label(value)
    return text, types
