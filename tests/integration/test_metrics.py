"""``GET /metrics`` of the app on Postgres with its in-process worker: requests per
route template, a job's life, credits, breakers, the queue's state read at scrape
time; a worker's own listener; and several processes summed in multiprocess mode.

The process's registry is shared by every test in the session: each test reads the
metrics before and after, and asserts what changed."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from genstudio.adapters.memory import FakeClock, InMemoryGpuProvider
from genstudio.adapters.memory.metrics import MemoryMetrics
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.model.routing import ProviderRouter
from genstudio.core.services.credits import grant_credits
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.observability import job_metrics
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ObservabilitySettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests import servers

SECRET = "metrics-secret-" + "m" * 32
UNUSED_DATABASE = "postgresql://genstudio@127.0.0.1:9/never-connected"
COST = DEFAULT_CATALOG.image_price("flux-schnell", 512, 512, 1)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


class Api:
    def __init__(self, client: AsyncTestClient[Litestar], gpu: InMemoryGpuProvider, db: str):
        self.client = client
        self.gpu = gpu
        self.db = db

    async def scrape(self) -> Samples:
        response = await self.client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return parse(response.text)

    def headers(self, user: uuid.UUID) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}

    async def submit(self, user: uuid.UUID) -> str:
        response = await self.client.post(
            "/v1/generate/image",
            json={"model": "flux-schnell", "prompt": "a red fox", "width": 512, "height": 512},
            headers=self.headers(user) | {"Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    async def grant(self, user: uuid.UUID, amount: int) -> None:
        engine = make_engine(self.db, pool_size=1)  # the test's own: the app's is on its loop
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


@pytest.fixture(scope="module")
def metrics_db() -> Iterator[str]:
    """One database for this module's apps (a new one per test costs seconds): each
    test's assertions on the jobs' state hold whichever ran before it."""
    from genstudio.adapters.supabase.migrate import upgrade

    name = f"genstudio_metrics_{uuid.uuid4().hex[:10]}"
    admin = f"{servers.pg_server()}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def api(metrics_db: str, tmp_path: Path) -> AsyncIterator[Api]:
    gpu = InMemoryGpuProvider("fake", steps=1)
    settings = Settings(
        database=DatabaseSettings(url=metrics_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(
            poll_interval=0.01,
            worker_concurrency=1,
            retry_base_delay=0.05,
            retry_max_delay=0.1,
            reconcile_interval=0.2,
            breaker_failures=2,
            breaker_cooldown=60,
        ),
    )

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield Api(client, gpu, metrics_db)


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 15.0) -> None:
    for _ in range(int(within / 0.05)):  # polled: what it waits for is in another task
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_a_job_shows_in_the_request_job_and_credit_metrics(api: Api) -> None:
    user = uuid.uuid4()
    await api.client.get("/v1/me", headers=api.headers(user))  # the profile exists
    await api.grant(user, 10)
    before = await api.scrape()
    job_id = await api.submit(user)

    async def finished() -> bool:
        body = (await api.client.get(f"/v1/generate/{job_id}", headers=api.headers(user))).json()
        return bool(body["status"] == "succeeded")

    await _until(finished, "the job succeeded")
    after = await api.scrape()

    route = {"method": "POST", "route": "/v1/generate/image", "status": "202"}
    assert delta(before, after, "genstudio_http_requests_total", **route) == 1
    polled = {"method": "GET", "route": "/v1/generate/{job_id}", "status": "200"}
    assert delta(before, after, "genstudio_http_requests_total", **polled) >= 1
    assert not any(job_id in str(labels) for _, labels in after), "no raw path is a label"
    assert (
        delta(
            before,
            after,
            "genstudio_http_request_duration_seconds_count",
            method="POST",
            route="/v1/generate/image",
        )
        == 1
    )

    assert delta(before, after, "genstudio_jobs_submitted_total", kind="image") == 1
    assert delta(before, after, "genstudio_job_queue_wait_seconds_count", kind="image") == 1
    attempt = {"kind": "image", "provider": "fake", "outcome": "succeeded", "reason": "none"}
    assert delta(before, after, "genstudio_job_attempts_total", **attempt) == 1
    assert (
        delta(before, after, "genstudio_job_run_seconds_count", kind="image", provider="fake") == 1
    )
    finished_labels = {"kind": "image", "outcome": "succeeded"}
    assert delta(before, after, "genstudio_jobs_finished_total", **finished_labels) == 1
    assert delta(before, after, "genstudio_credits_total", flow="held") == COST
    assert delta(before, after, "genstudio_credits_total", flow="spent") == COST

    # read from Postgres at scrape time: this app's database has this one job
    assert value(after, "genstudio_queue_stats_up") == 1
    assert value(after, "genstudio_jobs", kind="image", state="in_flight") == 0
    assert value(after, "genstudio_jobs", kind="image", state="queued") == 0
    assert value(after, "genstudio_jobs", kind="image", state="dead_lettered") == 0
    recent = {"kind": "image", "outcome": "succeeded", "window": "5m"}
    assert value(after, "genstudio_jobs_recent", **recent) == 1
    assert value(after, "genstudio_queue_oldest_wait_seconds", kind="image") == 0
    # the in-process worker's breaker, read at the scrape
    assert value(after, "genstudio_provider_breaker_state", provider="fake") == 0


async def test_unknown_paths_have_one_label_and_webhooks_count_by_outcome(api: Api) -> None:
    before = await api.scrape()
    for n in range(3):
        assert (await api.client.get(f"/no/such/path/{n}")).status_code == 404
    refused = await api.client.post(
        "/v1/webhooks/runpod?token=wrong&job=x", json={"status": "COMPLETED"}
    )
    assert refused.status_code == 401
    after = await api.scrape()
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta(before, after, "genstudio_http_requests_total", **unmatched) == 3
    assert (
        delta(before, after, "genstudio_webhooks_total", source="runpod", outcome="rejected") == 1
    )
    assert value(
        after, "genstudio_http_requests_total", method="GET", route="/metrics", status="200"
    )


async def test_a_failing_provider_opens_its_breaker_and_its_job_waits_queued(
    api: Api,
) -> None:
    # it answers its health checks but breaks every job (a provider down for health
    # checks too is not tried at all: its jobs wait, no attempt spent)
    api.gpu.fail_with = JobError(FailureReason.INFRASTRUCTURE, "worker crashed")
    user = uuid.uuid4()
    await api.client.get("/v1/me", headers=api.headers(user))
    await api.grant(user, 10)
    before = await api.scrape()
    await api.submit(user)

    async def opened() -> bool:
        return value(await api.scrape(), "genstudio_provider_breaker_state", provider="fake") == 2

    await _until(opened, "the breaker opened")
    after = await api.scrape()
    failed = {"kind": "image", "provider": "fake", "outcome": "failed", "reason": "infrastructure"}
    assert delta(before, after, "genstudio_job_attempts_total", **failed) == 2
    assert value(after, "genstudio_jobs", kind="image", state="queued") == 1
    assert (
        delta(before, after, "genstudio_jobs_finished_total", kind="image", outcome="failed") == 0
    )


async def test_a_database_that_does_not_answer_leaves_the_process_metrics_served(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database=DatabaseSettings(url=UNUSED_DATABASE),  # connection refused
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, in_process_worker=False))
    async with AsyncTestClient(app) as client:
        started = time.monotonic()
        response = await client.get("/metrics")
        assert time.monotonic() - started < 5
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "genstudio_queue_stats_up") == 0
    assert not any(name == "genstudio_jobs" for name, _ in samples)
    assert any(name == "genstudio_http_requests_total" for name, _ in samples)


async def test_a_worker_serves_its_own_metrics_on_its_port(tmp_path: Path) -> None:
    settings = Settings(jobs=JobSettings(worker_metrics_port=0, worker_metrics_host="127.0.0.1"))
    clock = FakeClock()
    router = ProviderRouter({}, default=["modal", "runpod"], failure_threshold=1)
    router.record_failure("runpod", clock.now())  # its breaker opens
    metrics = MemoryMetrics()
    from genstudio.adapters.prometheus import PrometheusMetrics

    async with job_metrics(
        settings, router, clock, PrometheusMetrics(), listen=True, every=0.05
    ) as listener:
        assert listener is not None
        await asyncio.sleep(0.1)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{listener.port}/metrics")
    assert response.status_code == 200
    samples = parse(response.text)
    assert value(samples, "genstudio_provider_breaker_state", provider="runpod") == 2
    assert value(samples, "genstudio_provider_breaker_state", provider="modal") == 0
    # without listen (the API's in-process worker), nothing listens; breakers still read
    async with job_metrics(settings, router, clock, metrics, listen=False) as none:
        await asyncio.sleep(0.01)
    assert none is None and metrics.breakers == {"modal": "closed", "runpod": "open"}


_CHILD = """
import os, sys
from genstudio.adapters.prometheus import PrometheusMetrics, process_exited
from genstudio.ports.metrics import CreditFlow, JobOutcome
m = PrometheusMetrics()
for _ in range(int(sys.argv[1])):
    m.job_finished(kind="image", outcome=JobOutcome.SUCCEEDED)
m.credits_moved(CreditFlow.SPENT, 3)
m.breaker_state("modal", sys.argv[2])
if sys.argv[3] == "exited":
    process_exited(os.getpid(), os.environ["PROMETHEUS_MULTIPROC_DIR"])
"""


async def test_multiprocess_mode_sums_every_process_in_the_apis_metrics(tmp_path: Path) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    # two workers that ran jobs; the first has exited (its breaker forgotten)
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD, str(count), breaker, exited, env=env
        )
        for count, breaker, exited in [(2, "open", "exited"), (3, "half_open", "alive")]
    ]
    assert [await child.wait() for child in children] == [0, 0]
    settings = Settings(
        database=DatabaseSettings(url=UNUSED_DATABASE),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        observability=ObservabilitySettings(prometheus_multiproc_dir=str(shared)),
    )
    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, in_process_worker=False))
    async with AsyncTestClient(app) as client:
        response = await client.get("/metrics")
    samples = parse(response.text)
    finished = {"kind": "image", "outcome": "succeeded"}
    assert value(samples, "genstudio_jobs_finished_total", **finished) == 5
    assert value(samples, "genstudio_credits_total", flow="spent") == 6
    assert value(samples, "genstudio_provider_breaker_state", provider="modal") == 1
    assert value(samples, "genstudio_queue_stats_up") == 0  # and the snapshot is there too
