"""Realtime across processes (issue #18): two API instances and a Taskiq worker on the
machine's Postgres and Redis. A client connected to instance 1 sees ``credits.changed``
and ``job.updated`` progress for a job submitted through instance 2 and run by the
worker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from genstudio.adapters.supabase.auth import mint_token
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

SECRET = "e2e-realtime-" + "x" * 32


@pytest.fixture(scope="module")
def instances(
    pg_url: str, redis_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, Service]]:
    tmp_path = tmp_path_factory.mktemp("realtime")
    env = {
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_queue,
        "SUPABASE_JWT_SECRET": SECRET,
        "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
        "GENSTUDIO_POLL_INTERVAL": "0.05",
        "GENSTUDIO_LOCAL_GPU_SECONDS": "1.5",  # progress can be seen rising
    }
    one, two = Service(env, tmp_path), Service(env, tmp_path)
    one.log_dir = tmp_path / "one"
    two.log_dir = tmp_path / "two"
    one.log_dir.mkdir()
    two.log_dir.mkdir()
    one.start("api", "serve")
    two.start("api", "serve")
    two.start("worker", "worker")
    try:
        one.wait_ready()
        two.wait_ready()
        yield one, two
    finally:
        one.stop_all()
        two.stop_all()


async def test_a_client_on_instance_1_sees_a_job_submitted_through_instance_2(
    instances: tuple[Service, Service],
) -> None:
    one, two = instances
    user = uuid.uuid4()
    token = mint_token(SECRET, user_id=user)
    two.cli("credits", "grant", str(user), "20")
    ws_url = one.base.replace("http://", "ws://") + "/v1/realtime"
    async with connect(ws_url, subprotocols=["genstudio.v1", f"bearer.{token}"]) as ws:  # type: ignore[list-item]
        assert json.loads(await ws.recv())["type"] == "ready"
        async with httpx.AsyncClient(
            base_url=two.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            answer = await api.post(
                "/v1/generate/image",
                json={
                    "model": "flux-schnell",
                    "prompt": "a lighthouse at dusk",
                    "width": 512,
                    "height": 384,
                    "count": 4,
                },
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert answer.status_code == 202, answer.text
            job_id = answer.json()["id"]
            cost = 20 - (await api.get("/v1/me")).json()["credits"]
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 40
        while not any(
            e["type"] == "job.updated" and e["data"]["status"] == "succeeded" for e in seen
        ):
            assert time.monotonic() < deadline, f"no success seen: {seen}"
            message = json.loads(await asyncio.wait_for(ws.recv(), 40))
            if message["type"] != "ping":
                seen.append(message)
    credits = [e["data"] for e in seen if e["type"] == "credits.changed"]
    assert credits[0] == {"balance": 20 - cost}  # the hold, told by instance 2
    jobs = [e["data"] for e in seen if e["type"] == "job.updated"]
    assert {j["jobId"] for j in jobs} == {job_id}
    statuses = [j["status"] for j in jobs]
    assert statuses[0] == "queued" and statuses[-1] == "succeeded"
    running = [j["progress"] for j in jobs if j["status"] == "running"]
    assert any(0 < p < 100 for p in running), jobs  # progress, told by the worker
    assert running == sorted(running)
    ids = [e["id"] for e in seen]
    assert len(set(ids)) == len(ids)  # each event once
