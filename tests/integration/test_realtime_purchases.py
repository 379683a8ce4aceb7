"""A purchase's ``credits.changed`` reaches an open app (issue #18), over a real
server: uvicorn on loopback (what ``genstudio serve`` runs), the real app on Postgres
and Redis, the App Store's signed data verified for real (a test chain shaped like
Apple's, the App Store Server API on a loopback stand-in), a WebSocket client on
``/v1/realtime``. And the operator's ``genstudio credits grant``, run as its own
runtime, reaches the same connection through Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.cli import grant
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol
from genstudio.entrypoints.iap_settings import AppleSettings
from genstudio.entrypoints.realtime_settings import RealtimeSettings
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from genstudio.ports.realtime import CREDITS_CHANGED
from tests import servers
from tests.standins.apple import BUNDLE_ID, AppleSigner, AppStoreServerStandIn, transaction

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SECRET = "realtime-purchases-" + "p" * 32
PACK = "app.genstudio.credits.100"


class Served:
    def __init__(self, settings: Settings, base: str, signer: AppleSigner) -> None:
        self.settings, self.base, self.signer = settings, base, signer

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/v1/realtime"

    async def buy(self, user: uuid.UUID, signed: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base) as client:
            return await client.post(
                "/v1/purchases/apple",
                json={"signedTransaction": signed},
                headers={"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"},
            )


@pytest.fixture(scope="module")
def served(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The app under uvicorn in a thread of its own, Apple purchases configured."""
    signer = AppleSigner()
    with AppStoreServerStandIn(signer) as api:
        settings = Settings(
            database=DatabaseSettings(url=pg_url),
            redis=RedisSettings(url=servers.redis_url()),
            supabase=SupabaseSettings(jwt_secret=SECRET),
            server=ServerSettings(data_dir=tmp_path_factory.mktemp("rtp")),
            realtime=RealtimeSettings(heartbeat=0.5, auth_timeout=0.5),
            apple=AppleSettings(
                root_certificates=signer.root_b64,
                bundle_id=BUNDLE_ID,
                environment="Sandbox",
                online_checks=False,
                api_base_url=api.url,
                private_key=api.private_key_pem.decode(),
                key_id=api.keys.key_id,
                issuer_id=api.keys.issuer_id,
                api_timeout=1.0,
            ),
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
            yield Served(settings, f"http://127.0.0.1:{port}", signer)
        finally:
            server.should_exit = True
            thread.join(15)


async def _message(ws: ClientConnection, *, skip_pings: bool = True) -> dict[str, Any]:
    """The next message (past the heartbeats unless ``skip_pings`` is off), within 5 s
    in all: heartbeats alone do not keep a test waiting for an event that never comes."""

    async def receive() -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await ws.recv())
            if not (skip_pings and message["type"] == "ping"):
                return message

    return await asyncio.wait_for(receive(), 5)


async def _signed_in(url: str, user: uuid.UUID) -> ClientConnection:
    ws = await connect(url)
    await ws.send(json.dumps({"type": "auth", "token": mint_token(SECRET, user_id=user)}))
    assert (await _message(ws))["type"] == "ready"
    return ws


async def test_a_purchase_redeemed_over_http_tells_the_open_app_its_new_balance_once(
    served: Served,
) -> None:
    user = uuid.uuid4()
    signed = served.signer.sign(transaction(product_id=PACK, user=user))
    async with await _signed_in(served.ws_url, user) as ws:
        bought = await served.buy(user, signed)
        assert bought.status_code == 200, bought.text
        assert bought.json()["balance"] == 100
        event = await _message(ws)
        assert (event["type"], event["data"]) == (CREDITS_CHANGED, {"balance": 100})

        again = await served.buy(user, signed)  # presented again: nothing moved
        assert again.status_code == 200 and again.json()["replayed"] is True
        # the next thing the connection hears is its heartbeat, not a second event
        assert (await _message(ws, skip_pings=False))["type"] == "ping"


async def test_an_operators_cli_grant_reaches_the_open_app_through_redis(
    served: Served,
) -> None:
    user = uuid.uuid4()
    async with await _signed_in(served.ws_url, user) as ws:
        # ``genstudio credits grant``: its own runtime (container, Redis client), as
        # the command's process would open
        balance = await asyncio.to_thread(grant, served.settings, user, 7)
        assert balance == 7
        event = await _message(ws)
        assert (event["type"], event["data"]) == (CREDITS_CHANGED, {"balance": 7})
