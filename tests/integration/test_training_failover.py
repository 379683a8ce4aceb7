"""A training whose provider fails mid-training fails over: Modal (primary) breaks
after it has trained a while, the job is retried on Runpod, over their real
protocols (loopback stand-ins), with the API and its worker on the real Postgres.
The user is charged once, sees the retry in the job's events, and gets the model."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests import servers
from tests.contract.faces import distinct_face_jpegs
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.integration.test_failover import SECRET, grant, headers, modal, remote_gpus, runpod
from tests.standins.modal import ModalStandin
from tests.standins.runpod import RunpodStandin

pytestmark = pytest.mark.postgres
__all__ = ["modal", "runpod"]  # the fixtures, used by name


@pytest.fixture
async def client(
    fresh_db: str, tmp_path: Path, modal: ModalStandin, runpod: RunpodStandin
) -> AsyncIterator[httpx.AsyncClient]:
    """The app under uvicorn on loopback: the stand-ins' workers download the photos
    from its signed /media URLs, as Modal's and Runpod's would from ours."""
    port = servers.free_port()
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path, public_url=f"http://127.0.0.1:{port}"),
        jobs=JobSettings(
            poll_interval=0.02,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            reconcile_interval=0.2,
            breaker_failures=2,
            breaker_cooldown=1.0,
            gpu_timeout=2.0,
        ),
        **remote_gpus(modal, runpod),
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=settings.server.base_url, timeout=30) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(15)


async def until_done(
    client: httpx.AsyncClient, user: uuid.UUID, job_id: str
) -> tuple[dict[str, Any], list[int]]:
    seen: list[int] = []
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        body = (await client.get(f"/v1/training/{job_id}", headers=headers(user))).json()
        seen.append(body["step"])
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body, seen
        await asyncio.sleep(0.05)
    raise AssertionError(body)


async def test_a_training_failing_mid_way_at_modal_fails_over_to_runpod_and_is_charged_once(
    client: httpx.AsyncClient,
    modal: ModalStandin,
    runpod: RunpodStandin,
    fresh_db: str,
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 100)
    created = await client.post("/v1/training/photo-sets", json={}, headers=headers(user))
    set_id = created.json()["id"]
    for data in distinct_face_jpegs(10):
        uploaded = await client.post(
            f"/v1/training/photo-sets/{set_id}/photos",
            files={"photo": ("p.jpg", data, "image/jpeg")},
            headers=headers(user),
        )
        assert uploaded.json()["accepted"], uploaded.json()
    modal.knobs.job_seconds, modal.knobs.fail_with = 0.6, "infrastructure"
    runpod.knobs.job_seconds = 0.6

    started = await client.post(
        "/v1/training",
        json={"photoSetId": set_id, "steps": 1000, "triggerWord": "ohwx", "name": "Me"},
        headers=headers(user) | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    done, steps = await until_done(client, user, job_id)

    assert done["status"] == "succeeded", done
    assert (done["attempts"], done["retried"], done["step"]) == (2, True, 1000)
    assert done["trainedModelId"] and done["samples"]
    assert any(0 < s < 1000 for s in steps)  # step progress was shown on the way
    job = (await client.get(f"/v1/generate/{job_id}", headers=headers(user))).json()
    assert job["provider"] == "runpod"
    events = (await client.get(f"/v1/training/{job_id}/events", headers=headers(user))).json()
    assert [e["kind"] for e in events["items"]][-2:] == ["retrying", "succeeded"]
    (sent,) = [b for b in modal.submit_bodies if b.get("job_id") == job_id]
    assert sent["kind"] == "training" and len(sent["inputs"]) == 10
    assert runpod.run_bodies[-1]["input"]["steps"] == 1000
    with psycopg.connect(fresh_db) as conn:
        ledger = conn.execute(
            "SELECT kind, amount FROM credit_ledger WHERE user_id = %s AND kind <> 'grant'"
            " ORDER BY created_at",
            (user,),
        ).fetchall()
        balance = conn.execute("SELECT credits FROM profiles WHERE id = %s", (user,)).fetchone()
    assert ledger == [("hold", -100), ("settle", 0)] and balance == (0,)
    assert_ledger_invariants(fresh_db)
