"""The image classifier as its own process (issue #20, worker memory): `genstudio
classifier` beside `genstudio serve` on the embedded default, the API (with its
in-process worker) configured with GENSTUDIO_CLASSIFIER_URL and a token. A generated
image is classified there, and the API process never loads the model."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Service, free_port, until_stopped

pytestmark = pytest.mark.e2e

TOKEN = "e2e-classifier-" + "k" * 24


def classified(url: str) -> int:
    answer = httpx.get(f"{url}/health/ready", timeout=5)
    assert answer.status_code == 200
    return int(answer.json()["classified"])


def maps_onnxruntime(pid: int) -> bool:
    return "onnxruntime" in Path(f"/proc/{pid}/maps").read_text()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, str]]:
    tmp = tmp_path_factory.mktemp("classifier-service")
    classifier_url = f"http://127.0.0.1:{free_port()}"
    env = {
        "GENSTUDIO_DATA_DIR": str(tmp / "data"),
        "GENSTUDIO_POLL_INTERVAL": "0.05",
        "GENSTUDIO_CLASSIFIER_URL": classifier_url,
        "GENSTUDIO_CLASSIFIER_TOKEN": TOKEN,
        "GENSTUDIO_MODERATION_FAIL_CLOSED": "on",  # no silent skip if the service is unasked
    }
    for var in ("DATABASE_URL", "REDIS_URL", "SUPABASE_JWT_SECRET"):
        env[var] = ""
    svc = Service(env, tmp)
    svc.start("classifier", "classifier", "--port", classifier_url.rsplit(":", 1)[1])
    svc.start("api", "serve")
    try:
        svc.wait_ready(timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                classified(classifier_url)
                break
            except (httpx.HTTPError, AssertionError):
                assert time.monotonic() < deadline, svc.logs("classifier")
                time.sleep(0.2)
        yield svc, classifier_url
    finally:
        svc.stop_all()
    assert until_stopped(tmp.resolve() / "data" / "pg") == []


def an_image_job(svc: Service, prompt: str) -> tuple[dict[str, Any], int]:
    """A new user with 10 credits asks for an image: its job once ended, and the user's
    credits then."""
    user = uuid.uuid4()
    token = svc.cli("token", "--user", str(user))
    svc.cli("credits", "grant", str(user), "10")
    with httpx.Client(
        base_url=svc.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        submitted = client.post(
            "/v1/generate/image",
            json={"model": "flux-schnell", "prompt": prompt},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        deadline = time.monotonic() + 120
        while (body := client.get(f"/v1/generate/{job_id}").json())["status"] not in (
            "succeeded",
            "failed",
        ):
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        return body, int(client.get("/v1/me").json()["credits"])


def test_outputs_are_classified_by_the_service_and_the_api_never_loads_the_model(
    deployment: tuple[Service, str],
) -> None:
    svc, classifier_url = deployment
    before = classified(classifier_url)
    job, _ = an_image_job(svc, "a lighthouse at dusk")
    assert job["status"] == "succeeded", job
    assert classified(classifier_url) == before + 1  # the output, asked of the service
    assert not maps_onnxruntime(svc.procs["api"].pid)
    assert maps_onnxruntime(svc.procs["classifier"].pid)


def test_with_the_service_gone_an_output_is_not_delivered_unchecked(
    deployment: tuple[Service, str],
) -> None:
    """Fail-closed (as configured): the job does not succeed while the classifier is
    down, and the user's credits come back once it has failed."""
    svc, _ = deployment
    svc.stop("classifier")
    job, credits = an_image_job(svc, "a lighthouse at dawn")
    assert job["status"] == "failed", job
    assert "could not be moderated" in str(job), job
    assert credits == 10  # refunded
