"""The realtime fan-out's contract, over both backends: in one process, and across
processes on Redis (two instances sharing one Redis stand for two API processes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from genstudio.adapters.realtime import (
    Dropped,
    InProcessRealtime,
    RealtimeHub,
    RedisRealtime,
    Subscription,
)
from genstudio.ports.realtime import CREDITS_CHANGED, JOB_UPDATED, RealtimePublisher
from tests import servers

# (publishing instance, receiving instance): the same one in process; two on Redis
Pair = tuple[RealtimeHub, RealtimeHub]


@pytest.fixture(params=["in_process", "redis"])
async def make_pair(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Pair]]:
    made: list[RealtimeHub] = []
    clients: list[Redis] = []
    prefix = f"test:{uuid.uuid4().hex[:8]}:"  # streams of this test only

    def make(**sizes: int) -> Pair:
        if request.param == "in_process":
            hub = InProcessRealtime(**sizes)
            made.append(hub)
            return hub, hub
        pair = []
        for _ in range(2):
            client = Redis.from_url(servers.redis_url())
            clients.append(client)
            pair.append(RedisRealtime(client, prefix=prefix, **sizes))
        made.extend(pair)
        return pair[0], pair[1]

    yield make
    for hub in made:
        await hub.aclose()
    for client in clients:
        await client.aclose()


async def _next(sub: Subscription, wait: float = 3.0) -> dict[str, object]:
    text = await sub.next(wait)
    assert text is not None, "no event arrived"
    message: dict[str, object] = json.loads(text)
    return message


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(100):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not met")


async def test_an_event_published_on_one_instance_reaches_the_users_connection_on_another(
    make_pair: Callable[..., Pair],
) -> None:
    publisher, receiver = make_pair()
    alice = uuid.uuid4()
    sub, resync = await receiver.subscribe(alice)
    assert not resync
    port: RealtimePublisher = publisher
    await port.publish(alice, JOB_UPDATED, {"jobId": "j1", "status": "running", "progress": 40})
    message = await _next(sub)
    assert message["type"] == JOB_UPDATED
    assert message["data"] == {"jobId": "j1", "status": "running", "progress": 40}
    assert isinstance(message["id"], str)


async def test_another_users_events_are_never_delivered(make_pair: Callable[..., Pair]) -> None:
    publisher, receiver = make_pair()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices = (await receiver.subscribe(alice))[0]
    await publisher.publish(bob, CREDITS_CHANGED, {"balance": 7})
    await publisher.publish(alice, CREDITS_CHANGED, {"balance": 3})
    assert (await _next(alices))["data"] == {"balance": 3}
    assert await alices.next(0.2) is None  # bob's never came


async def test_a_reconnecting_client_gets_what_it_missed_after_its_last_event_id(
    make_pair: Callable[..., Pair],
) -> None:
    publisher, receiver = make_pair()
    alice = uuid.uuid4()
    first, _ = await receiver.subscribe(alice)
    await publisher.publish(alice, JOB_UPDATED, {"progress": 10})
    seen = await _next(first)
    receiver.unsubscribe(first)  # the app went to the background
    await publisher.publish(alice, JOB_UPDATED, {"progress": 50})
    await publisher.publish(alice, JOB_UPDATED, {"progress": 100})

    async def kept() -> bool:
        return len(await receiver.history(alice)) == 3

    await _eventually(kept)
    again, resync = await receiver.subscribe(alice, str(seen["id"]))
    assert not resync
    assert [(await _next(again))["data"] for _ in range(2)] == [
        {"progress": 50},
        {"progress": 100},
    ]
    await publisher.publish(alice, JOB_UPDATED, {"progress": 101})
    assert (await _next(again))["data"] == {"progress": 101}  # then live, each once
    assert await again.next(0.2) is None


async def test_a_client_further_behind_than_the_history_is_told_to_resync(
    make_pair: Callable[..., Pair],
) -> None:
    publisher, receiver = make_pair(history=3)
    alice = uuid.uuid4()
    first, _ = await receiver.subscribe(alice)
    await publisher.publish(alice, JOB_UPDATED, {"n": 0})
    seen = await _next(first)
    receiver.unsubscribe(first)
    for n in range(1, 6):
        await publisher.publish(alice, JOB_UPDATED, {"n": n})

    async def trimmed() -> bool:
        kept = await receiver.history(alice)
        return [e.data for e in kept] == [b'{"n":3}', b'{"n":4}', b'{"n":5}']

    await _eventually(trimmed)  # bounded: only the last 3 are kept
    again, resync = await receiver.subscribe(alice, str(seen["id"]))
    assert resync
    assert [(await _next(again))["data"] for _ in range(3)] == [{"n": 3}, {"n": 4}, {"n": 5}]


async def test_a_slow_client_is_dropped_not_buffered_without_bound(
    make_pair: Callable[..., Pair],
) -> None:
    publisher, receiver = make_pair(queue_limit=5)
    alice = uuid.uuid4()
    slow, _ = await receiver.subscribe(alice)
    fast, _ = await receiver.subscribe(alice)
    for n in range(6):  # one more than the slow one may have waiting
        await publisher.publish(alice, JOB_UPDATED, {"n": n})
        assert (await _next(fast))["data"] == {"n": n}  # the other connection keeps up
    with pytest.raises(Dropped):
        await slow.next(1.0)


async def test_a_payload_that_is_not_json_ready_is_refused(
    make_pair: Callable[..., Pair],
) -> None:
    publisher, _ = make_pair()
    with pytest.raises(TypeError):
        await publisher.publish(uuid.uuid4(), JOB_UPDATED, {"x": object()})


async def test_publishing_to_an_unreachable_redis_is_dropped_and_logged_not_raised() -> None:
    client = Redis.from_url(
        f"redis://127.0.0.1:{servers.free_port()}/0", socket_connect_timeout=0.5
    )
    hub = RedisRealtime(client)
    await hub.publish(uuid.uuid4(), JOB_UPDATED, {"progress": 1})  # returns at once
    await hub.aclose()  # the flush failed quietly
    await client.aclose()
