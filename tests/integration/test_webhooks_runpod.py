"""POST /v1/webhooks/runpod in-process: the token guards it, the job id is all it
reads, and a live job is put back on the queue for a worker to re-read /status."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.memory import InMemoryJobQueue, InMemoryUnitOfWorkFactory
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.pricing import ModelKind
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.generation.webhooks import token_matches
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    RunpodSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)

SECRET = "webhook-secret-" + "w" * 24
PROBLEM = "application/problem+json"
#: the runtime makes its engine but nothing connects it: the unit of work is in memory
UNUSED_DATABASE = "postgresql://genstudio@127.0.0.1:9/never-connected"


@dataclass
class Hooks:
    client: AsyncTestClient[Litestar]
    uow: InMemoryUnitOfWorkFactory
    queue: InMemoryJobQueue

    async def job(self, status: JobStatus = JobStatus.DISPATCHED) -> Job:
        now = datetime.now(UTC)
        job = Job(
            id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            kind=ModelKind.IMAGE,
            model_id="flux-schnell",
            params=ImageParams(prompt="a fox", width=512, height=512),
            cost=2,
            hold_id=None,
            status=status,
            created_at=now,
            updated_at=now,
            provider="runpod",
        )
        async with self.uow() as uow:
            await uow.jobs.add(job)
            await uow.commit()
        return job

    async def post(self, query: str, body: object = None) -> Any:
        return await self.client.post(
            f"/v1/webhooks/runpod{query}", json=body if body is not None else {"status": "x"}
        )


@pytest.fixture
async def hooks(tmp_path: Path) -> AsyncIterator[Hooks]:
    """The app as it runs without Redis (the in-memory queue), its container's unit of
    work overridden by the memory one; no in-process worker takes the wake-ups."""
    settings = Settings(
        supabase=SupabaseSettings(jwt_secret="j" * 40),
        server=ServerSettings(data_dir=tmp_path),
        runpod=RunpodSettings(webhook_secret=SECRET),
        database=DatabaseSettings(url=UNUSED_DATABASE),
    )
    uow = InMemoryUnitOfWorkFactory()

    def configure(container: AppContainer) -> None:
        container.uow_factory.override(providers.Object(uow))

    app = create_app(
        settings,
        runtime_opener=lambda s: open_runtime(s, in_process_worker=False, configure=configure),
    )
    async with AsyncTestClient(app) as client:
        queue = app.state.container.queue()
        assert isinstance(queue, InMemoryJobQueue)
        yield Hooks(client, uow, queue)


async def test_a_webhook_with_the_token_enqueues_the_job_for_a_status_reread(
    hooks: Hooks,
) -> None:
    job = await hooks.job()

    response = await hooks.post(
        f"?token={SECRET}&job={job.id}", {"id": "sa-1", "status": "COMPLETED", "output": 1}
    )

    assert response.status_code == 200
    assert response.json() == {"accepted": True, "detail": ""}
    assert hooks.queue.enqueued == [job.id]


async def test_a_webhook_while_the_queue_is_down_is_still_acknowledged(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis down: the wake-up is left to the reconciler (the job is in Postgres), and
    Runpod gets its 200 rather than a 500 it would retry."""
    job = await hooks.job()

    async def down(*args: object, **kwargs: object) -> None:
        raise ConnectionError("Redis does not answer")

    monkeypatch.setattr(hooks.queue, "enqueue", down)
    response = await hooks.post(f"?token={SECRET}&job={job.id}")
    assert response.status_code == 200 and response.json()["accepted"] is True


@pytest.mark.parametrize("query", ["", "?token=", "?token=wrong", f"?token={SECRET[:-1]}"])
async def test_a_webhook_without_the_right_token_is_a_401_problem(hooks: Hooks, query: str) -> None:
    job = await hooks.job()
    sep = "&" if query else "?"

    response = await hooks.post(f"{query}{sep}job={job.id}")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "unauthorized"
    assert hooks.queue.enqueued == []


async def test_a_webhook_for_a_garbage_or_unknown_job_is_a_problem(hooks: Hooks) -> None:
    garbage = await hooks.post(f"?token={SECRET}&job=not-a-uuid")
    missing = await hooks.post(f"?token={SECRET}")
    unknown = await hooks.post(f"?token={SECRET}&job={uuid.uuid4()}")

    assert (garbage.status_code, garbage.json()["field"]) == (422, "job")
    assert missing.status_code == 422
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith(PROBLEM)
    assert hooks.queue.enqueued == []


async def test_a_webhook_for_a_finished_job_is_acknowledged_and_changes_nothing(
    hooks: Hooks,
) -> None:
    job = await hooks.job(JobStatus.SUCCEEDED)

    response = await hooks.post(f"?token={SECRET}&job={job.id}", "not even an object")

    assert response.status_code == 200
    assert response.json()["accepted"] is False
    assert hooks.queue.enqueued == []


def test_the_token_check_refuses_empty_tokens_and_an_unset_secret() -> None:
    assert not token_matches("", None)
    assert not token_matches("x", None)
    assert not token_matches(None, "x")
    assert token_matches("x", "x")
