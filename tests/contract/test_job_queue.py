"""The JobQueue contract over both adapters: what is enqueued reaches a consumer,
with the job's id and kind, as often as it was sent (at least once)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from adapters.memory.queue import InMemoryJobQueue
from adapters.redis import TaskiqJobQueue, make_stream_broker
from ports.queue import JobQueue
from tests.fault.conftest import RedisServer

Receive = Callable[[int], Awaitable[list[tuple[str, str]]]]


@contextlib.asynccontextmanager
async def memory_queue(tmp: Path) -> AsyncIterator[tuple[JobQueue, Receive]]:
    queue = InMemoryJobQueue()

    async def receive(n: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            job_id, kind, _ = await asyncio.wait_for(queue.messages.get(), 5)
            out.append((str(job_id), kind))
        return out

    yield queue, receive


@contextlib.asynccontextmanager
async def taskiq_queue(tmp: Path) -> AsyncIterator[tuple[JobQueue, Receive]]:
    server = RedisServer(tmp)
    server.start()
    sender = make_stream_broker(server.url)
    listener = make_stream_broker(server.url)
    listener.is_worker_process = True
    await sender.startup()
    await listener.startup()

    async def receive(n: int) -> list[tuple[str, str]]:
        out = []
        gen = listener.listen()
        for _ in range(n):
            message = await asyncio.wait_for(anext(gen), 5)
            body = msgspec.json.decode(message.data)
            out.append((body["args"][0], body["args"][1]))
            await message.ack()  # type: ignore[misc]
        await gen.aclose()
        return out

    try:
        yield TaskiqJobQueue(sender), receive
    finally:
        await sender.shutdown()
        await listener.shutdown()
        server.stop()


@pytest.fixture(params=["memory", "taskiq"])
async def queue_pair(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[JobQueue, Receive]]:
    factory = memory_queue if request.param == "memory" else taskiq_queue
    async with factory(tmp_path) as pair:
        yield pair


async def test_an_enqueued_job_reaches_a_consumer_with_its_kind(
    queue_pair: tuple[JobQueue, Receive],
) -> None:
    queue, receive = queue_pair
    sent = [(uuid.uuid4(), kind) for kind in ("image", "video", "edit")]
    for job_id, kind in sent:
        await queue.enqueue(job_id, kind=kind, priority=5)
    got = await receive(3)
    assert sorted(got) == sorted((str(j), k) for j, k in sent)


async def test_enqueueing_twice_delivers_twice(queue_pair: tuple[JobQueue, Receive]) -> None:
    queue, receive = queue_pair
    job_id = uuid.uuid4()
    await queue.enqueue(job_id, kind="image")
    await queue.enqueue(job_id, kind="image")
    assert await receive(2) == [(str(job_id), "image")] * 2
