"""A mobile user's whole journey against real processes: the API and a Taskiq
worker on the machine's Postgres and Redis, and the embedded default with nothing
configured."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from PIL import Image

from tests.e2e.conftest import Service, embedded_servers, until_stopped

pytestmark = pytest.mark.e2e

SECRET = "e2e-secret-" + "x" * 32


def poll_until_done(client: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/v1/generate/{job_id}").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {body}")


def user_client(service: Service, user: uuid.UUID) -> httpx.Client:
    token = service.cli("token", "--user", str(user), "--email", f"{user.hex[:8]}@example.com")
    return httpx.Client(
        base_url=service.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def submit(client: httpx.Client, key: str, **body: object) -> httpx.Response:
    payload = {
        "model": "flux-schnell",
        "prompt": "a lighthouse at dusk",
        "width": 512,
        "height": 384,
    }
    payload.update(body)
    return client.post("/v1/generate/image", json=payload, headers={"Idempotency-Key": key})


@pytest.fixture(scope="module")
def service(
    pg_url: str, redis_queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("service")
    svc = Service(
        {
            "DATABASE_URL": pg_url,
            "REDIS_URL": redis_queue,
            "SUPABASE_JWT_SECRET": SECRET,
            "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
            "GENSTUDIO_POLL_INTERVAL": "0.05",
            "GENSTUDIO_LOCAL_GPU_SECONDS": "0.3",
            # these journeys race 50 submissions on one balance and 20 on one key: what they
            # prove is the ledger and the key under concurrency, not the submission budget
            # (tests/integration/test_limits.py proves that), so the budget is roomy here
            "GENSTUDIO_RATE_SUBMISSIONS_FREE": "1000/60",
            "GENSTUDIO_RATE_SUBMISSIONS_IP": "1000/60",
        },
        tmp_path,
    )
    svc.start("api", "serve")
    svc.start("worker", "worker")
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop_all()


def test_a_user_pays_once_and_gets_a_png_of_the_requested_size(service: Service) -> None:
    user = uuid.uuid4()
    with user_client(service, user) as client:
        assert client.get("/v1/me").json()["credits"] == 0
        out = service.cli("credits", "grant", str(user), "10", "--reason", "welcome")
        assert "balance 10" in out

        created = submit(client, str(uuid.uuid4()), count=2)
        assert created.status_code == 202, created.text
        job = created.json()
        assert job["status"] == "queued" and job["cost"] == 2
        assert client.get("/v1/me").json()["credits"] == 8

        done = poll_until_done(client, job["id"])
        assert done["status"] == "succeeded", done
        assert done["progress"] == 100
        assets = done["assets"]
        assert isinstance(assets, list) and len(assets) == 2
        for asset in assets:
            image = httpx.get(asset["url"], timeout=10)
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/png"
            picture = Image.open(io.BytesIO(image.content))
            assert picture.format == "PNG" and picture.size == (512, 384)
            # the signed URL is the only way in: without its signature, nothing
            unsigned = asset["url"].split("?")[0]
            assert httpx.get(unsigned, timeout=10).status_code in (400, 403, 422)

        ledger = client.get("/v1/me/credits").json()["items"]
        kinds = [e["kind"] for e in ledger]
        assert kinds == ["settle", "hold", "grant"]
        assert client.get("/v1/me").json()["credits"] == 8


def test_cancelling_a_job_releases_its_credits(service: Service) -> None:
    user = uuid.uuid4()
    service.cli("credits", "grant", str(user), "5")
    with user_client(service, user) as client:
        job = submit(client, str(uuid.uuid4()), count=4).json()
        cancelled = client.post(f"/v1/generate/{job['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        assert client.get("/v1/me").json()["credits"] == 5
        again = client.post(f"/v1/generate/{job['id']}/cancel")
        assert again.status_code == 409
        assert again.headers["content-type"].startswith("application/problem+json")
        # the worker sees the cancellation and never charges
        time.sleep(1.5)
        assert client.get(f"/v1/generate/{job['id']}").json()["status"] == "cancelled"
        assert client.get("/v1/me").json()["credits"] == 5
        kinds = [e["kind"] for e in client.get("/v1/me/credits").json()["items"]]
        assert kinds == ["release", "hold", "grant"]


def test_fifty_simultaneous_submissions_on_a_balance_for_ten(service: Service) -> None:
    user = uuid.uuid4()
    service.cli("credits", "grant", str(user), "10")
    with user_client(service, user) as client, ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda _: submit(client, str(uuid.uuid4())).status_code, range(50)))
        assert sorted(codes) == [202] * 10 + [402] * 40
        assert client.get("/v1/me").json()["credits"] == 0


def test_twenty_simultaneous_requests_with_one_key_make_one_job(
    service: Service, pg_url: str
) -> None:
    user = uuid.uuid4()
    service.cli("credits", "grant", str(user), "10")
    key = str(uuid.uuid4())
    with user_client(service, user) as client, ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: submit(client, key), range(20)))
        accepted = [r for r in responses if r.status_code == 202]
        assert accepted and all(r.status_code in (202, 409) for r in responses)
        assert len({r.json()["id"] for r in accepted}) == 1
        assert client.get("/v1/me").json()["credits"] == 9
        replay = submit(client, key)
        assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
        assert replay.json()["id"] == accepted[0].json()["id"]
        different = submit(client, key, prompt="something else")
        assert different.status_code == 422
    with psycopg.connect(pg_url) as conn:
        jobs = conn.execute("SELECT count(*) FROM jobs WHERE user_id = %s", (user,)).fetchone()
        holds = conn.execute(
            "SELECT count(*) FROM credit_holds WHERE user_id = %s", (user,)
        ).fetchone()
    assert jobs == (1,) and holds == (1,)


def test_the_embedded_default_runs_with_nothing_configured_and_keeps_data(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"GENSTUDIO_DATA_DIR": str(data), "GENSTUDIO_POLL_INTERVAL": "0.05"}
    for var in ("DATABASE_URL", "REDIS_URL", "SUPABASE_JWT_SECRET"):
        env[var] = ""
    svc = Service(env, tmp_path)
    user = uuid.uuid4()
    try:
        svc.start("api", "serve")
        svc.wait_ready()
        svc.cli("credits", "grant", str(user), "3")
        with user_client(svc, user) as client:
            job = submit(client, str(uuid.uuid4()), width=256, height=256).json()
            done = poll_until_done(client, job["id"])
            assert done["status"] == "succeeded", done
            png = httpx.get(done["assets"][0]["url"], timeout=10)  # type: ignore[index]
            assert Image.open(io.BytesIO(png.content)).size == (256, 256)
        assert embedded_servers(data.resolve() / "pg")  # the API holds it
        # SIGTERM, as a process manager stops it: the embedded server stops with it (the
        # CLI command above attached to it and let go)
        svc.stop("api")
        assert until_stopped(data.resolve() / "pg") == []
        svc.start("api", "serve")
        svc.wait_ready()
        with user_client(svc, user) as client:  # the kept secret still signs valid tokens
            assert client.get("/v1/me").json()["credits"] == 2
            assert client.get(f"/v1/generate/{job['id']}").json()["status"] == "succeeded"
    finally:
        svc.stop_all()
    assert until_stopped(data.resolve() / "pg") == []
