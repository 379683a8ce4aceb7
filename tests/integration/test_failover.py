"""Failover between GPU providers over their real protocols: Modal (primary) and
Runpod (fallback) stand-ins on loopback, the API and its in-process worker on the
real Postgres. Each job is charged exactly once wherever it ran."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.services.credits import grant_credits
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ModalSettings,
    RunpodSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.ledger_checks import assert_ledger_invariants
from tests.standins.modal import ModalStandin
from tests.standins.runpod import RunpodStandin

SECRET = "failover-secret-" + "f" * 32


@pytest.fixture
def modal() -> Iterator[ModalStandin]:
    with ModalStandin() as standin:
        yield standin


@pytest.fixture
def runpod() -> Iterator[RunpodStandin]:
    with RunpodStandin() as standin:
        yield standin


def remote_gpus(modal: ModalStandin, runpod: RunpodStandin) -> dict[str, Any]:
    """Settings that make Modal the GPU and Runpod its fallback, both stand-ins."""
    return {
        "modal": ModalSettings(
            base_url=modal.base_url, token_id=modal.token_id, token_secret=modal.token_secret
        ),
        "runpod": RunpodSettings(
            base_url=runpod.base_url, api_key=runpod.api_key, endpoints={"*": "ep-flux"}
        ),
    }


@pytest.fixture
async def client(
    fresh_db: str, tmp_path: Path, modal: ModalStandin, runpod: RunpodStandin
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    # a database of its own: the worker must meet no other test's jobs
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(
            poll_interval=0.02,
            worker_concurrency=4,
            per_user_in_flight=4,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            reconcile_interval=0.2,
            breaker_failures=2,
            breaker_cooldown=1.0,
            gpu_timeout=2.0,
        ),
        **remote_gpus(modal, runpod),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def grant(database_url: str, user: uuid.UUID, amount: int) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        await grant_credits(
            SqlUnitOfWorkFactory(engine),
            user_id=user,
            amount=amount,
            reference="test",
            idempotency_key=str(uuid.uuid4()),
            now=datetime.now(UTC),
        )
    finally:
        await engine.dispose()


def headers(user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}


async def submit_and_finish(
    client: AsyncTestClient[Litestar], user: uuid.UUID, n: int
) -> list[dict[str, Any]]:
    ids = []
    for _ in range(n):
        r = await client.post(
            "/v1/generate/image",
            json={
                "model": "flux-schnell",
                "prompt": "a harbour at night",
                "width": 256,
                "height": 256,
            },
            headers=headers(user) | {"Idempotency-Key": str(uuid.uuid4())},
        )
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
    done = []
    deadline = time.monotonic() + 30
    for job_id in ids:
        while True:
            body = (await client.get(f"/v1/generate/{job_id}", headers=headers(user))).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                done.append(body)
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
    return done


async def test_jobs_fail_over_to_runpod_while_modal_errors_and_come_back_when_it_recovers(
    client: AsyncTestClient[Litestar],
    modal: ModalStandin,
    runpod: RunpodStandin,
    fresh_db: str,
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 20)
    modal.knobs.status_code = 500
    during = await submit_and_finish(client, user, 4)
    assert [j["status"] for j in during] == ["succeeded"] * 4
    assert {j["provider"] for j in during} == {"runpod"}
    assert len(runpod.jobs) == 4, "each job ran once at the fallback"
    assert not modal.jobs, "the primary accepted nothing while it failed"

    modal.knobs.status_code = None
    await asyncio.sleep(1.5)  # the breaker's cool-down; health checks see Modal answer again
    [trial] = await submit_and_finish(client, user, 1)  # half-open: one trial call decides
    assert trial["status"] == "succeeded" and trial["provider"] == "modal"
    after = await submit_and_finish(client, user, 2)
    assert [j["status"] for j in after] == ["succeeded"] * 2
    assert {j["provider"] for j in after} == {"modal"}
    assert len(runpod.jobs) == 4

    me = (await client.get("/v1/me", headers=headers(user))).json()
    assert me["credits"] == 20 - 7
    with psycopg.connect(fresh_db) as conn:
        settles = conn.execute(
            "SELECT count(*) FROM credit_ledger WHERE user_id = %s AND kind = 'settle'", (user,)
        ).fetchone()
    assert settles == (7,)
    assert_ledger_invariants(fresh_db, users=[user])


async def test_a_content_refusal_is_not_retried_elsewhere(
    client: AsyncTestClient[Litestar],
    modal: ModalStandin,
    runpod: RunpodStandin,
    fresh_db: str,
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    modal.knobs.fail_with = "content"
    [job] = await submit_and_finish(client, user, 1)
    assert job["status"] == "failed" and job["attempts"] == 1
    assert job["error"]["reason"] == "content"
    assert not runpod.jobs
    assert (await client.get("/v1/me", headers=headers(user))).json()["credits"] == 5
    assert_ledger_invariants(fresh_db, users=[user])
