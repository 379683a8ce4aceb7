"""Edit and video on the real GPU providers' protocols: the Modal stand-in downloads
the uploads from their signed Supabase Storage URLs (a stand-in too), renders, and the
app stores the results; with Modal failing, Runpod takes the same jobs."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image

from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.test_failover import grant, remote_gpus
from tests.integration.test_http_modes import BOX, MASK, PNG
from tests.standins.modal import ModalStandin
from tests.standins.runpod import RunpodStandin
from tests.standins.supabase_storage import SupabaseStorageStandIn

SECRET = "remote-modes-secret-" + "r" * 32
ISSUER = "https://project.supabase.co/auth/v1"


@pytest.fixture
def standins() -> Iterator[tuple[ModalStandin, RunpodStandin, SupabaseStorageStandIn]]:
    with ModalStandin() as modal, RunpodStandin() as runpod, SupabaseStorageStandIn() as storage:
        yield modal, runpod, storage


@pytest.fixture
async def client(
    fresh_db: str,
    tmp_path: Path,
    standins: tuple[ModalStandin, RunpodStandin, SupabaseStorageStandIn],
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    modal, runpod, storage = standins
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(
            jwt_secret=SECRET,
            url=storage.url,
            jwt_issuer=ISSUER,  # else <SUPABASE_URL>/auth/v1, which differs per run
            service_key=storage.service_key,
        ),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(
            poll_interval=0.05,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            reconcile_interval=0.2,
            breaker_failures=1,
            gpu_timeout=10.0,
        ),
        **remote_gpus(modal, runpod),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def fetch(url: str) -> bytes:
    """A signed Supabase Storage URL, fetched as the app would hand it to a phone."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.content


def headers(user: uuid.UUID) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {mint_token(SECRET, user_id=user, issuer=ISSUER)}",
        "Idempotency-Key": str(uuid.uuid4()),
    }


async def finish(client: AsyncTestClient[Litestar], user: uuid.UUID, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job: dict[str, Any] = (
            await client.get(f"/v1/generate/{job_id}", headers=headers(user))
        ).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.1)


async def test_an_edit_runs_on_modal_reading_its_uploads_through_signed_urls(
    client: AsyncTestClient[Litestar],
    fresh_db: str,
    standins: tuple[ModalStandin, RunpodStandin, SupabaseStorageStandIn],
) -> None:
    modal, _, _ = standins
    user = uuid.uuid4()
    await grant(fresh_db, user, 10)
    r = await client.post(
        "/v1/generate/edit",
        data={"model": "sdxl-inpaint", "prompt": "a red door", "seed": "3"},
        files={"image": ("a.png", PNG, "image/png"), "mask": ("m.png", MASK, "image/png")},
        headers=headers(user),
    )
    assert r.status_code == 202, r.text
    job = await finish(client, user, r.json()["id"])
    assert job["status"] == "succeeded" and job["provider"] == "modal", job
    [body] = modal.submit_bodies
    assert body["kind"] == "edit" and body["image_url"].startswith("http")
    [asset] = job["assets"]
    result = Image.open(io.BytesIO(await fetch(asset["url"]))).convert("RGB")
    original = Image.open(io.BytesIO(PNG)).convert("RGB")
    x0, y0, x1, y1 = BOX
    outside = [
        (x, y)
        for x in range(0, 160, 7)
        for y in range(0, 120, 7)
        if not (x0 <= x <= x1 and y0 <= y <= y1)
    ]
    assert all(result.getpixel(p) == original.getpixel(p) for p in outside)


@pytest.mark.parametrize("fail_modal", [False, True])
async def test_image_to_video_runs_remotely_and_fails_over(
    client: AsyncTestClient[Litestar],
    fresh_db: str,
    standins: tuple[ModalStandin, RunpodStandin, SupabaseStorageStandIn],
    fail_modal: bool,
) -> None:
    modal = standins[0]
    if fail_modal:
        modal.knobs.status_code = 500
    user = uuid.uuid4()
    await grant(fresh_db, user, 50)
    r = await client.post(
        "/v1/generate/video",
        data={
            "model": "wan-2.1",
            "prompt": "waves",
            "inputType": "image",
            "durationSeconds": "1",
            "fps": "8",
            "resolution": "480p",
        },
        files={"image": ("a.png", PNG, "image/png")},
        headers=headers(user),
    )
    assert r.status_code == 202, r.text
    job = await finish(client, user, r.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["provider"] == ("runpod" if fail_modal else "modal")
    [asset] = job["assets"]
    video = await fetch(asset["url"])
    with av.open(io.BytesIO(video), "r") as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == 8
    assert (await fetch(asset["thumbnailUrl"])).startswith(b"\x89PNG")
    me = (await client.get("/v1/me", headers=headers(user))).json()
    assert me["credits"] == 50 - job["cost"]
