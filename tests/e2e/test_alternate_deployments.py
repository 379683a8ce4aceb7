"""An alternate deployment chosen by configuration only (issue #23): the API and a worker
as processes, storing media in S3 (examples/s3_storage against moto's S3 server on
loopback) and rendering on fal (examples/fal_gpu against its stand-in) as Modal's
failover while Modal's stand-in fails. Nothing but environment variables differs from
tests/e2e/test_image_journey.py's deployment; the two packages are installed, as a
deployment installs them (make test's install step).

Also at start: a name no installed package registers, and a named adapter short of its
settings, stop the process saying which variable."""

from __future__ import annotations

import asyncio
import io
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import httpx
import psycopg
import pytest
from genstudio_fal.standin import FalStandin
from moto.server import ThreadedMotoServer
from PIL import Image

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.services.credits import grant_credits
from tests.conftest import own_database
from tests.e2e.conftest import GENSTUDIO, ROOT, Service
from tests.standins.modal import ModalStandin

pytestmark = pytest.mark.e2e

SECRET = "alternate-secret-" + "a" * 32
BUCKET = "genstudio-media"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    admin = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="ak",
        aws_secret_access_key="sk",
    )
    admin.create_bucket(Bucket=BUCKET)  # a deployment's bucket is made beforehand
    yield url
    server.stop()


@pytest.fixture(scope="module")
def modal() -> Iterator[ModalStandin]:
    with ModalStandin() as standin:
        standin.knobs.status_code = 503  # every call: Modal is down
        yield standin


@pytest.fixture(scope="module")
def fal() -> Iterator[FalStandin]:
    with FalStandin(key="fal-e2e-key") as standin:
        standin.knobs.queue_seconds, standin.knobs.run_seconds = 0.1, 0.2
        yield standin


def deployment_env(s3: str, modal: ModalStandin, fal: FalStandin) -> dict[str, str]:
    """The configuration: which adapters, and their own variables. Nothing else."""
    return {
        "GPU_PROVIDERS": "modal,fal",
        "MODAL_BASE_URL": modal.base_url,
        "MODAL_TOKEN_ID": modal.token_id,
        "MODAL_TOKEN_SECRET": modal.token_secret,
        "FAL_KEY": fal.key,
        "FAL_QUEUE_URL": fal.url,
        "MEDIA_STORAGE": "s3",
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": s3,
        "S3_ADDRESSING_STYLE": "path",
        "S3_ACCESS_KEY_ID": "ak",
        "S3_SECRET_ACCESS_KEY": "sk",
    }


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """This deployment's database alone: the session's holds other modules' jobs, which
    this worker would take over (left by their stopped workers) and send to fal too."""
    with own_database() as url:
        yield url


@pytest.fixture(scope="module")
def service(
    own_db: str,
    redis_queue: str,
    s3: str,
    modal: ModalStandin,
    fal: FalStandin,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("alternate")
    svc = Service(
        {
            "DATABASE_URL": own_db,
            "REDIS_URL": redis_queue,
            "SUPABASE_JWT_SECRET": SECRET,
            "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
            "GENSTUDIO_POLL_INTERVAL": "0.05",
            "GENSTUDIO_GPU_TIMEOUT": "5",
            # one failed call opens Modal's breaker for the rest of the test: the job's
            # retry goes to fal at once
            "GENSTUDIO_BREAKER_FAILURES": "1",
            "GENSTUDIO_BREAKER_COOLDOWN": "120",
            "GENSTUDIO_RETRY_BASE_DELAY": "0.1",
            "GENSTUDIO_RETRY_MAX_DELAY": "0.5",
            **deployment_env(s3, modal, fal),
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


async def grant(database_url: str, user: uuid.UUID, amount: int) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        await grant_credits(
            SqlUnitOfWorkFactory(engine),
            user_id=user,
            amount=amount,
            reference="e2e",
            idempotency_key=str(uuid.uuid4()),
            now=datetime.now(UTC),
        )
    finally:
        await engine.dispose()


def test_an_image_renders_on_fal_while_modal_fails_and_is_kept_in_s3(
    service: Service, own_db: str, s3: str, modal: ModalStandin, fal: FalStandin
) -> None:
    user = uuid.uuid4()
    asyncio.run(grant(own_db, user, 10))
    headers = {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}
    with httpx.Client(base_url=service.base, headers=headers, timeout=30) as client:
        created = client.post(
            "/v1/generate/image",
            json={
                "model": "flux-schnell",
                "prompt": "a lighthouse at dusk",
                "width": 256,
                "height": 192,
                "count": 2,
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]
        deadline = time.monotonic() + 60
        while (done := client.get(f"/v1/generate/{job_id}").json())["status"] not in (
            "succeeded",
            "failed",
            "cancelled",
        ):
            assert time.monotonic() < deadline, (done, service.logs("worker"))
            time.sleep(0.1)
        assert done["status"] == "succeeded", (done, service.logs("worker"))

        # the worker found Modal failing (its health check, or a submission: whichever came
        # first) and fal rendered it
        assert modal.statuses() and set(modal.statuses()) == {503}
        [(endpoint, body)] = fal.submitted
        assert endpoint == "fal-ai/flux/schnell"
        assert body["image_size"] == {"width": 256, "height": 192} and body["num_images"] == 2
        with psycopg.connect(own_db) as conn:
            row = conn.execute("SELECT provider FROM jobs WHERE id = %s", (job_id,)).fetchone()
        assert row == ("fal",)

        # the outputs are in the S3 bucket under the user, served by presigned URLs
        assets = done["assets"]
        assert len(assets) == 2
        for asset in assets:
            assert asset["url"].startswith(f"{s3}/{BUCKET}/{user}/"), asset["url"]
            image = httpx.get(asset["url"], timeout=10)
            assert image.status_code == 200
            assert image.headers["content-type"] == "image/png"
            assert Image.open(io.BytesIO(image.content)).size == (256, 192)
            assert httpx.get(asset["url"].split("?")[0], timeout=10).status_code == 403
        admin = boto3.client(
            "s3",
            endpoint_url=s3,
            region_name="us-east-1",
            aws_access_key_id="ak",
            aws_secret_access_key="sk",
        )
        stored = admin.list_objects_v2(Bucket=BUCKET, Prefix=f"{user}/")["Contents"]
        assert len(stored) >= 2  # the outputs (and their thumbnails, if any)

        # charged once, wherever it ran
        assert client.get("/v1/me").json()["credits"] == 8
        kinds = [e["kind"] for e in client.get("/v1/me/credits").json()["items"]]
        assert kinds == ["settle", "hold", "grant"]


@pytest.mark.parametrize(
    ("command", "env", "says"),
    [
        (
            "worker",
            {"GPU_PROVIDERS": "modal,replicate"},
            "GPU_PROVIDERS names 'replicate', which is not installed; installed GPU providers: "
            "fal, local, modal, runpod",
        ),
        (
            "serve",
            {"MEDIA_STORAGE": "s3", "S3_ENDPOINT_URL": "http://127.0.0.1:9"},
            "MEDIA_STORAGE=s3 needs S3_BUCKET",
        ),
    ],
)
def test_a_process_refuses_to_start_on_an_adapter_it_cannot_build(
    pg_url: str, tmp_path: Path, command: str, env: dict[str, str], says: str
) -> None:
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": pg_url,
        "REDIS_URL": "redis://127.0.0.1:9/0",
        "SUPABASE_JWT_SECRET": SECRET,
        "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
        "PORT": "9",
        **env,
    }
    done = subprocess.run(
        [*GENSTUDIO, command], env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert says in done.stderr, done.stderr[-2000:]
