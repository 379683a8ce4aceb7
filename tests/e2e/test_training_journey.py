"""A personal model end to end on the embedded default, as processes: `genstudio
serve` with nothing configured (embedded Postgres, in-process worker, the CPU
trainer of gpu_local, local files), driven over HTTP like the app's Training tab.

Upload twelve photos (two bad on purpose) and read the verdicts, start a training,
watch its steps rise, get the model, generate with it, and read the ledger: the
training's hold settled, and a training forced to fail (a stored photo corrupted
under it) released."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from tests.contract import photos as p
from tests.contract.faces import distinct_face_jpegs
from tests.e2e.conftest import Service, until_stopped

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    tmp = tmp_path_factory.mktemp("embedded-training")
    env = {
        "GENSTUDIO_DATA_DIR": str(tmp / "data"),
        "GENSTUDIO_POLL_INTERVAL": "0.05",
        # every job takes at least this long: a training's 500 steps are paced over it
        "GENSTUDIO_LOCAL_GPU_SECONDS": "3",
    }
    for var in ("DATABASE_URL", "REDIS_URL", "SUPABASE_JWT_SECRET"):
        env[var] = ""
    svc = Service(env, tmp)
    svc.start("api", "serve")
    try:
        svc.wait_ready(timeout=120)
        yield svc, tmp / "data"
    finally:
        svc.stop_all()
    assert until_stopped(tmp.resolve() / "data" / "pg") == []


def wait(client: httpx.Client, path: str, timeout: float = 40) -> tuple[dict[str, Any], list[int]]:
    """The job once it ended, and the steps seen on the way."""
    steps: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(path).json()
        steps.append(body.get("step", 0))
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body, steps
        time.sleep(0.1)
    raise AssertionError(f"{path} did not finish")


def train(client: httpx.Client, set_id: str) -> dict[str, Any]:
    started = client.post(
        "/v1/training",
        json={"photoSetId": set_id, "steps": 500, "triggerWord": "ohwx", "name": "Me"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert started.status_code == 202, started.text
    return started.json()  # type: ignore[no-any-return]


def test_upload_train_watch_generate_and_pay_once(embedded: tuple[Service, Path]) -> None:
    service, data_dir = embedded
    user = uuid.uuid4()
    token = service.cli("token", "--user", str(user))
    service.cli("credits", "grant", str(user), "200")
    client = httpx.Client(
        base_url=service.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
    )

    set_id = client.post("/v1/training/photo-sets", json={"name": "Me"}).json()["id"]
    uploads = [*distinct_face_jpegs(10), p.jpeg(p.cat()), p.jpeg(p.blurred(p.astronaut()))]
    verdicts = []
    for n, data in enumerate(uploads):
        response = client.post(
            f"/v1/training/photo-sets/{set_id}/photos",
            files={"photo": (f"{n}.jpg", data, "image/jpeg")},
        )
        assert response.status_code == 201, response.text
        verdicts.append(response.json())
    assert [v["accepted"] for v in verdicts] == [True] * 10 + [False, False]
    assert "no_face" in verdicts[10]["reasons"] and "blurry" in verdicts[11]["reasons"]
    assert client.get(f"/v1/training/photo-sets/{set_id}").json()["ready"] is True

    job = train(client, set_id)
    assert (job["cost"], job["total"], job["photoCount"]) == (50, 500, 10)
    done, steps = wait(client, f"/v1/training/{job['id']}")
    assert done["status"] == "succeeded", done
    assert done["step"] == done["total"] == 500 and done["percent"] == 100
    between = [s for s in steps if 0 < s < 500]
    assert between and between == sorted(between)  # step progress rose, never fell
    assert httpx.get(done["samples"][0]["url"]).content.startswith(b"\x89PNG")

    (model,) = client.get("/v1/training/models").json()["items"]
    assert (model["id"], model["status"], model["triggerWord"]) == (
        done["trainedModelId"], "ready", "ohwx")  # fmt: skip
    assert httpx.get(model["thumbnailUrl"]).status_code == 200

    image = client.post(
        "/v1/generate/image",
        json={
            "model": "flux-schnell",
            "prompt": "ohwx on a bicycle",
            "width": 512,
            "height": 512,
            "loraId": model["id"],
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert image.status_code == 202, image.text
    generated, _ = wait(client, f"/v1/generate/{image.json()['id']}")
    assert generated["status"] == "succeeded" and generated["params"]["loraId"] == model["id"]

    # forced failure: a stored photo of the set corrupted under a second training
    key = unquote(urlsplit(verdicts[0]["url"]).path.removeprefix("/media/"))
    (data_dir / "media" / key).write_bytes(b"not a photo any more")
    failed, _ = wait(client, f"/v1/training/{train(client, set_id)['id']}")
    assert failed["status"] == "failed" and failed["error"]["reason"] == "internal"

    ledger = client.get("/v1/me/credits").json()["items"][::-1]  # oldest first
    moves = [(e["kind"], e["amount"]) for e in ledger]
    assert moves == [
        ("grant", 200),
        ("hold", -50), ("settle", 0),  # the training
        ("hold", -1), ("settle", 0),  # the image with the user's model
        ("hold", -50), ("release", 50),  # the failed training: refunded
    ]  # fmt: skip
    assert client.get("/v1/me").json()["credits"] == 149
