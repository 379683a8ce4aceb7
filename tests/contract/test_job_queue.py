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
from redis.asyncio import Redis
from taskiq import BrokerMessage, TaskiqMessage, TaskiqMiddleware
from taskiq.kicker import AsyncKicker

from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.adapters.redis import TaskiqJobQueue, make_stream_broker
from genstudio.adapters.redis.queue import PROCESS_JOB_TASK, ResilientStreamBroker
from genstudio.ports.queue import JobQueue
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


# the Redis sender: concurrent wake-ups share a round trip ------------------------------


async def test_wake_ups_sent_in_one_turn_of_the_loop_share_one_round_trip(
    tmp_path: Path,
) -> None:
    async with taskiq_queue(tmp_path) as (queue, receive):
        assert isinstance(queue, TaskiqJobQueue)
        broker = queue.broker
        assert isinstance(broker, ResilientStreamBroker)
        jobs = [(uuid.uuid4(), kind) for kind in ("image", "video", "image", "training")]
        await asyncio.gather(*(queue.enqueue(j, kind=k) for j, k in jobs))
        assert (broker.batches, broker.batched) == (1, 4)  # every caller returned after it
        await queue.enqueue(jobs[0][0], kind="edit")  # alone: a plain XADD
        assert (broker.batches, broker.batched) == (2, 5)
        got = await receive(5)
        assert sorted(got) == sorted([(str(j), k) for j, k in jobs] + [(str(jobs[0][0]), "edit")])


@contextlib.asynccontextmanager
async def lone_sender(
    tmp: Path,
) -> AsyncIterator[tuple[RedisServer, ResilientStreamBroker, TaskiqJobQueue]]:
    """A sending broker on a private Redis that the test may stop and start."""
    server = RedisServer(tmp)
    server.start()
    broker = make_stream_broker(server.url)
    await broker.startup()
    try:
        yield server, broker, TaskiqJobQueue(broker)
    finally:
        await broker.shutdown()
        server.stop()


async def test_a_failed_round_trip_fails_every_wake_up_it_carried(tmp_path: Path) -> None:
    async with lone_sender(tmp_path) as (server, broker, queue):
        server.stop()
        results = await asyncio.gather(
            *(queue.enqueue(uuid.uuid4(), kind="image") for _ in range(3)),
            return_exceptions=True,
        )
        assert len(results) == 3 and all(isinstance(r, Exception) for r in results)
        assert broker.batches == 0


async def test_a_cancelled_caller_does_not_cancel_the_others(tmp_path: Path) -> None:
    async with taskiq_queue(tmp_path) as (queue, receive):
        first = asyncio.ensure_future(queue.enqueue(uuid.uuid4(), kind="image"))
        kept = uuid.uuid4()
        second = asyncio.ensure_future(queue.enqueue(kept, kind="video"))
        await asyncio.sleep(0)  # both joined the batch
        first.cancel()
        await second
        got = await receive(2)  # the cancelled caller's message was sent all the same
        assert (str(kept), "video") in got


async def test_after_a_lost_connection_the_next_wake_up_connects_again(tmp_path: Path) -> None:
    async with lone_sender(tmp_path) as (server, _, queue):
        await queue.enqueue(uuid.uuid4(), kind="image")
        server.stop()
        with pytest.raises(Exception):  # noqa: B017 - whatever the lost connection raises
            await queue.enqueue(uuid.uuid4(), kind="image")
        server.start()  # same port, empty
        kept = uuid.uuid4()
        await queue.enqueue(kept, kind="image")
        async with Redis.from_url(server.url) as client:
            entries = await client.xrange("genstudio:jobs:image")
        assert entries is not None
        [(_, fields)] = entries
        assert fields is not None
        assert msgspec.json.decode(fields[b"data"])["args"] == [str(kept), "image"]


async def test_a_redis_that_never_answers_fails_the_wake_up_in_bounded_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung Redis (a partition, a stalled server) must not hold submissions: the
    wake-up fails after SEND_TIMEOUT_S and the reconciler sends it later."""
    monkeypatch.setattr("genstudio.adapters.redis.queue.SEND_TIMEOUT_S", 0.3)
    received = bytearray()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            received.extend(data)  # and never answer

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    broker = make_stream_broker(f"redis://127.0.0.1:{port}/0")
    queue = TaskiqJobQueue(broker)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(Exception):  # noqa: B017 - the kicker's SendTaskError
            await queue.enqueue(uuid.uuid4(), kind="image")
        assert asyncio.get_running_loop().time() - started < 2
        assert received  # it talked to the server, which never answered
    finally:
        server.close()
        await broker.shutdown()


# the message: taskiq's own, written without its kicker --------------------------------


class _Kept(ResilientStreamBroker):
    """Keeps what it is asked to send."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.kept: list[BrokerMessage] = []

    async def kick(self, message: BrokerMessage) -> None:
        self.kept.append(message)


def _kept_broker() -> _Kept:
    return _Kept(
        "redis://127.0.0.1:1/0", queue_name="genstudio:jobs:image", maxlen=100, approximate=True
    )


@pytest.mark.parametrize("priority", [0, 9])
async def test_the_wake_up_is_the_message_taskiqs_kicker_writes(priority: int) -> None:
    broker = _kept_broker()
    job_id = uuid.uuid4()
    await TaskiqJobQueue(broker).enqueue(job_id, kind="video", priority=priority)
    labels = {"queue_name": "genstudio:jobs:video", "priority": priority}
    kicker: AsyncKicker[[str, str], None] = AsyncKicker(
        task_name=PROCESS_JOB_TASK, broker=broker, labels=labels
    )
    await kicker.kiq(str(job_id), "video")
    ours, taskiqs = broker.kept
    assert ours.task_id != taskiqs.task_id
    assert (ours.task_name, ours.labels) == (taskiqs.task_name, taskiqs.labels)
    read_ours = broker.formatter.loads(ours.message)
    read_theirs = broker.formatter.loads(taskiqs.message)
    assert read_ours.task_id == ours.task_id
    assert read_ours.model_copy(update={"task_id": "x"}) == read_theirs.model_copy(
        update={"task_id": "x"}
    )
    assert read_ours.args == [str(job_id), "video"]
    assert read_ours.labels["queue_name"] == "genstudio:jobs:video"
    read_ours.parse_labels()  # typed again, as a worker reads them
    assert read_ours.labels["priority"] == priority


async def test_a_broker_with_a_sending_middleware_gets_taskiqs_kicker() -> None:
    class Stamp(TaskiqMiddleware):
        def pre_send(self, message: TaskiqMessage) -> TaskiqMessage:
            message.labels["stamped"] = "yes"
            return message

    broker = _kept_broker()
    broker.add_middlewares(Stamp())
    await TaskiqJobQueue(broker).enqueue(uuid.uuid4(), kind="image")
    [sent] = broker.kept
    assert broker.formatter.loads(sent.message).labels["stamped"] == "yes"
