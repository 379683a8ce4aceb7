"""Metrics across real processes (``genstudio serve`` and ``genstudio worker`` on
Postgres and Redis), both ways docs/operations.md offers: each worker serving its own
on ``GENSTUDIO_WORKER_METRICS_PORT``, or every process writing into
``PROMETHEUS_MULTIPROC_DIR`` and the API's ``/metrics`` summing them."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.credits import grant_credits
from tests.e2e.conftest import Service, free_port

pytestmark = pytest.mark.e2e

SECRET = "e2e-metrics-" + "q" * 32
COST = DEFAULT_CATALOG.image_price("flux-schnell", 512, 512, 1)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def _grant(database: str, user: uuid.UUID, amount: int) -> None:
    engine = make_engine(database, pool_size=1)
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


def run_a_job(service: Service, database: str) -> None:
    user = uuid.uuid4()
    token = mint_token(SECRET, user_id=user)  # what `genstudio token` prints, without a process
    with httpx.Client(
        base_url=service.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        assert client.get("/v1/me").status_code == 200
        asyncio.run(_grant(database, user, 10))
        submitted = client.post(
            "/v1/generate/image",
            json={"model": "flux-schnell", "prompt": "a red fox", "width": 512, "height": 512},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = client.get(f"/v1/generate/{job_id}").json()["status"]
            if status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        assert status == "succeeded", service.logs("worker")


def _service(fresh_db: str, redis_queue: str, tmp_path: Path, **env: str) -> Service:
    return Service(
        {
            "DATABASE_URL": fresh_db,
            "REDIS_URL": redis_queue,
            "SUPABASE_JWT_SECRET": SECRET,
            "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
            "GENSTUDIO_POLL_INTERVAL": "0.05",
            "GENSTUDIO_STOP_GRACE": "2",
            **env,
        },
        tmp_path,
    )


def test_a_worker_serves_what_it_did_on_its_own_port(
    fresh_db: str, redis_queue: str, tmp_path: Path
) -> None:
    port = free_port()
    service = _service(
        fresh_db,
        redis_queue,
        tmp_path,
        GENSTUDIO_WORKER_METRICS_PORT=str(port),
        GENSTUDIO_WORKER_METRICS_HOST="127.0.0.1",
    )
    service.start("api", "serve")
    service.start("worker", "worker")
    try:
        service.wait_ready()
        run_a_job(service, fresh_db)
        worker = scrape(f"http://127.0.0.1:{port}/metrics")
        api = scrape(f"{service.base}/metrics")
        # the worker ran the job: its attempt, its end, the credits it spent
        attempt = {"kind": "image", "provider": "local", "outcome": "succeeded", "reason": "none"}
        assert value(worker, "genstudio_job_attempts_total", **attempt) == 1
        ended = {"kind": "image", "outcome": "succeeded"}
        assert value(worker, "genstudio_jobs_finished_total", **ended) == 1
        assert value(worker, "genstudio_credits_total", flow="spent") == COST
        assert value(worker, "genstudio_provider_breaker_state", provider="local") == 0
        # the API took the submission (the grant came from this test's own process): not
        # the worker's; the job's state is read from Postgres by the API
        assert value(api, "genstudio_jobs_submitted_total", kind="image") == 1
        assert value(api, "genstudio_credits_total", flow="held") == COST
        assert value(api, "genstudio_jobs_finished_total", **ended) is None
        assert value(api, "genstudio_jobs_recent", **ended, window="5m") == 1
        assert value(api, "genstudio_queue_streams_up") == 1
        service.stop("worker", signal.SIGTERM)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    finally:
        service.stop_all()


def test_in_multiprocess_mode_the_apis_metrics_sum_the_worker_s(
    fresh_db: str, redis_queue: str, tmp_path: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    service = _service(fresh_db, redis_queue, tmp_path, PROMETHEUS_MULTIPROC_DIR=str(shared))
    service.start("api", "serve")
    service.start("worker", "worker")
    try:
        service.wait_ready()
        run_a_job(service, fresh_db)
        api = scrape(f"{service.base}/metrics")
        ended = {"kind": "image", "outcome": "succeeded"}
        assert value(api, "genstudio_jobs_finished_total", **ended) == 1  # the worker's
        assert value(api, "genstudio_jobs_submitted_total", kind="image") == 1  # the API's
        assert value(api, "genstudio_credits_total", flow="spent") == COST
        assert value(api, "genstudio_provider_breaker_state", provider="local") == 0
        posted = {"method": "POST", "route": "/v1/generate/image", "status": "202"}
        assert value(api, "genstudio_http_requests_total", **posted) == 1
        service.stop("worker", signal.SIGTERM)
        after = scrape(f"{service.base}/metrics")
        # a stopped worker's counts stay; its live breaker gauge goes with it
        assert value(after, "genstudio_jobs_finished_total", **ended) == 1
        assert value(after, "genstudio_provider_breaker_state", provider="local") is None
    finally:
        service.stop_all()
