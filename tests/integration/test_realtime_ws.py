"""``WS /v1/realtime`` over a real server: uvicorn on loopback (what ``genstudio serve``
runs), the real app on Postgres and Redis, a WebSocket client; events published by
another instance through Redis, as a worker process does."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from redis.asyncio import Redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from genstudio.adapters.realtime import RedisRealtime
from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol
from genstudio.entrypoints.realtime_settings import RealtimeSettings
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from genstudio.ports.realtime import CREDITS_CHANGED, JOB_UPDATED
from tests import servers

SECRET = "realtime-secret-" + "r" * 32


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app under uvicorn in a thread of its own, on a database of its own."""
    import psycopg

    from genstudio.adapters.supabase.migrate import upgrade
    from tests.conftest import _admin_url

    name = f"genstudio_rt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    upgrade(url)
    settings = Settings(
        database=DatabaseSettings(url=url),
        redis=RedisSettings(url=servers.redis_url()),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path_factory.mktemp("rt")),
        realtime=RealtimeSettings(heartbeat=0.5, auth_timeout=0.5),
    )
    port = servers.free_port()
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        http=CorkedHttpToolsProtocol,
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    try:
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        thread.join(15)
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def worker() -> AsyncIterator[RedisRealtime]:
    """Another process's publisher: what a worker's after-commit effects call."""
    client = Redis.from_url(servers.redis_url())
    publisher = RedisRealtime(client)
    yield publisher
    await publisher.aclose()
    await client.aclose()


def _token(user: uuid.UUID) -> str:
    return mint_token(SECRET, user_id=user)


async def _message(ws: ClientConnection, *, skip_pings: bool = True) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if not (skip_pings and message["type"] == "ping"):
            return message


async def _signed_in(url: str, user: uuid.UUID) -> ClientConnection:
    ws = await connect(url)
    await ws.send(json.dumps({"type": "auth", "token": _token(user)}))
    ready = await _message(ws)
    assert ready == {"type": "ready", "userId": str(user), "resync": False}
    return ws


async def _closed_with(ws: ClientConnection) -> tuple[int | None, str | None]:
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    rcvd = closed.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd is not None else (None, None)


async def test_a_client_authenticated_by_its_first_message_receives_its_events(
    served: str, worker: RedisRealtime
) -> None:
    alice = uuid.uuid4()
    async with await _signed_in(served, alice) as ws:
        await worker.publish(alice, CREDITS_CHANGED, {"balance": 42})
        event = await _message(ws)
        assert event["type"] == CREDITS_CHANGED and event["data"] == {"balance": 42}


async def test_a_client_authenticated_by_its_subprotocol_header_receives_its_events(
    served: str, worker: RedisRealtime
) -> None:
    alice = uuid.uuid4()
    offered = ["genstudio.v1", f"bearer.{_token(alice)}"]
    async with connect(served, subprotocols=offered) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "genstudio.v1"  # the token is never echoed
        assert (await _message(ws))["type"] == "ready"
        await worker.publish(alice, JOB_UPDATED, {"jobId": "j", "status": "running"})
        assert (await _message(ws))["data"] == {"jobId": "j", "status": "running"}


async def test_a_token_in_the_url_is_refused_before_it_is_read(served: str) -> None:
    async with connect(f"{served}?token={_token(uuid.uuid4())}") as ws:
        code, reason = await _closed_with(ws)
    assert code == 4400
    assert reason is not None and "URL" in reason


async def test_a_forged_or_missing_token_is_refused_4401(served: str) -> None:
    async with connect(served) as ws:
        await ws.send(json.dumps({"type": "auth", "token": "not-a-token"}))
        assert (await _closed_with(ws))[0] == 4401
    forged = mint_token("another-secret-" + "x" * 32, user_id=uuid.uuid4())
    async with connect(served, subprotocols=["genstudio.v1", f"bearer.{forged}"]) as ws:  # type: ignore[list-item]
        assert (await _closed_with(ws))[0] == 4401


async def test_a_client_that_never_authenticates_is_closed_4408(served: str) -> None:
    async with connect(served) as ws:
        assert (await _closed_with(ws))[0] == 4408


async def test_a_first_message_that_is_not_auth_is_refused_4400(served: str) -> None:
    async with connect(served) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        assert (await _closed_with(ws))[0] == 4400


async def test_another_users_events_are_never_delivered(served: str, worker: RedisRealtime) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    async with await _signed_in(served, alice) as a, await _signed_in(served, bob) as b:
        await worker.publish(bob, CREDITS_CHANGED, {"balance": 1})
        await worker.publish(alice, CREDITS_CHANGED, {"balance": 2})
        assert (await _message(a))["data"] == {"balance": 2}
        assert (await _message(b))["data"] == {"balance": 1}
        await worker.publish(alice, JOB_UPDATED, {"n": 3})
        assert (await _message(a))["data"] == {"n": 3}  # alice's next is hers, not bob's


async def test_a_connection_ends_when_its_token_expires_and_resumes_with_a_fresh_one(
    served: str, worker: RedisRealtime
) -> None:
    alice = uuid.uuid4()
    short = mint_token(SECRET, user_id=alice, ttl_seconds=2)
    async with connect(served) as ws:
        await ws.send(json.dumps({"type": "auth", "token": short}))
        assert (await _message(ws))["type"] == "ready"
        await worker.publish(alice, CREDITS_CHANGED, {"balance": 7})
        last = (await _message(ws))["id"]
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(20):  # heartbeats (every 0.5 s) until the token's end, ~2 s
                assert json.loads(await asyncio.wait_for(ws.recv(), 5)) == {"type": "ping"}
    rcvd = closed.value.rcvd
    assert rcvd is not None and rcvd.code == 4401 and "expired" in rcvd.reason
    await worker.publish(alice, CREDITS_CHANGED, {"balance": 8})  # while disconnected
    await asyncio.sleep(0.2)
    async with connect(f"{served}?lastEventId={last}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": _token(alice)}))
        assert (await _message(ws))["type"] == "ready"
        assert (await _message(ws))["data"] == {"balance": 8}  # nothing missed


async def test_an_idle_connection_gets_heartbeats(served: str) -> None:
    async with await _signed_in(served, uuid.uuid4()) as ws:
        assert await _message(ws, skip_pings=False) == {"type": "ping"}


async def test_a_reconnecting_client_receives_what_it_missed_after_its_last_event_id(
    served: str, worker: RedisRealtime
) -> None:
    alice = uuid.uuid4()
    async with await _signed_in(served, alice) as ws:
        await worker.publish(alice, JOB_UPDATED, {"progress": 10})
        last = (await _message(ws))["id"]
    await worker.publish(alice, JOB_UPDATED, {"progress": 60})
    await worker.publish(alice, JOB_UPDATED, {"progress": 100})
    await asyncio.sleep(0.2)  # sent in the background
    async with connect(f"{served}?lastEventId={last}") as ws:
        await ws.send(json.dumps({"type": "auth", "token": _token(alice)}))
        assert (await _message(ws))["resync"] is False
        assert [(await _message(ws))["data"] for _ in range(2)] == [
            {"progress": 60},
            {"progress": 100},
        ]


def test_the_route_is_in_the_app(tmp_path: Path) -> None:
    app = create_app(
        Settings(
            supabase=SupabaseSettings(jwt_secret=SECRET), server=ServerSettings(data_dir=tmp_path)
        )
    )
    assert "/v1/realtime" in {route.path for route in app.routes}
