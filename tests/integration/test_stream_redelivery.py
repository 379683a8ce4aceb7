"""Proof of the stream broker's redelivery on a real Redis, knowing taskiq-redis
#101 (a message idle longer than ``idle_timeout`` is redelivered, even while its
worker is alive) and #131 (a SIGKILLed worker's XAUTOCLAIM lock can block
reclaiming). Redis redelivery is only the fast path: the guarantee that a lost
job is found again comes from Postgres (the reconciler), proven with a SIGKILLed
worker in tests/fault/.

What makes a redelivery harmless — a job leased by a live worker is left alone —
is specified in tests/unit/test_processing.py
(test_a_redelivery_while_the_job_runs_resumes_it_without_submitting_again)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from taskiq import AckableMessage

from genstudio.adapters.redis import TaskiqJobQueue, make_stream_broker, stream_for
from genstudio.adapters.redis.queue import ResilientStreamBroker
from tests.fault.conftest import RedisServer

pytestmark = pytest.mark.redis


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    s = RedisServer(tmp_path)
    s.start()
    yield s
    s.stop()


@contextlib.asynccontextmanager
async def broker(url: str, **kw: float) -> AsyncIterator[ResilientStreamBroker]:
    b = make_stream_broker(url, kinds=["image"], maintenance=False, **kw)  # type: ignore[arg-type]
    b.is_worker_process = True
    await b.startup()
    try:
        yield b
    finally:
        await b.shutdown()


async def next_message(b: ResilientStreamBroker, wait: float) -> AckableMessage:
    gen = b.listen()
    try:
        return await asyncio.wait_for(anext(gen), wait)
    finally:
        with contextlib.suppress(Exception):
            await gen.aclose()


async def test_a_message_whose_worker_died_is_redelivered_after_the_idle_timeout(
    server: RedisServer,
) -> None:
    job_id = uuid.uuid4()
    async with (
        broker(server.url, idle_timeout_ms=300) as dead,
        broker(server.url, idle_timeout_ms=300) as alive,
    ):
        await TaskiqJobQueue(dead).enqueue(job_id, kind="image")
        taken = await next_message(dead, 5)
        assert str(job_id).encode() in taken.data  # taken, never acknowledged: the worker died
        await asyncio.sleep(0.5)
        # taskiq-redis reclaims only once new traffic arrives; the reconciler's
        # wake-ups provide it
        await TaskiqJobQueue(alive).enqueue(uuid.uuid4(), kind="image")
        seen: list[bytes] = []
        gen = alive.listen()
        for _ in range(2):
            seen.append((await asyncio.wait_for(anext(gen), 5)).data)
        await gen.aclose()
        assert any(str(job_id).encode() in data for data in seen), "the lost message came back"


async def test_workers_survive_redis_losing_their_consumer_group(server: RedisServer) -> None:
    async with broker(server.url) as b:
        gen = b.listen()
        pending = asyncio.ensure_future(anext(gen))
        await asyncio.sleep(0.3)
        server.stop()
        server.start()  # empty: the stream and its consumer group are gone (NOGROUP)
        job_id = uuid.uuid4()
        for _ in range(50):  # the listener re-declares the group once Redis is back
            await asyncio.sleep(0.2)
            if await Redis(port=server.port).exists(stream_for("image")):
                break
        await TaskiqJobQueue(b).enqueue(job_id, kind="image")
        message = await asyncio.wait_for(pending, 10)
        await gen.aclose()
        assert str(job_id).encode() in message.data


async def test_workers_survive_their_stream_deleted_while_they_wait_on_it(
    server: RedisServer,
) -> None:
    """A FLUSHDB (or the key deleted) while the worker is blocked in XREADGROUP answers
    it "UNBLOCKED the stream key no longer exists" (Redis 7): the worker re-declares
    its group and goes on, instead of exiting and leaving every later job queued."""
    async with broker(server.url) as b:
        gen = b.listen()
        pending = asyncio.ensure_future(anext(gen))
        await asyncio.sleep(0.3)  # blocked on the stream
        admin = Redis(port=server.port)
        await admin.flushdb()
        for _ in range(50):  # the listener re-declares the group (and the stream)
            await asyncio.sleep(0.1)
            if await admin.exists(stream_for("image")):
                break
        job_id = uuid.uuid4()
        await TaskiqJobQueue(b).enqueue(job_id, kind="image")
        message = await asyncio.wait_for(pending, 10)
        await gen.aclose()
        await admin.aclose()
        assert str(job_id).encode() in message.data
