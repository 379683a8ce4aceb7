"""Prompt enhancement and captions through OpenRouter's protocol (a loopback
stand-in), in the running app on the real Postgres: the enhanced prompt is kept on
the job and shown to the app with the user's words; generated images carry their
caption; a failing OpenRouter never fails a generation."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    OpenRouterSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.test_failover import grant
from tests.standins.loopback import Fail
from tests.standins.openrouter import OpenRouterStandIn, caption_for, enhancement_for

SECRET = "openrouter-secret-" + "o" * 32


@pytest.fixture
def openrouter() -> Iterator[OpenRouterStandIn]:
    with OpenRouterStandIn() as standin:
        yield standin


@pytest.fixture
async def client(
    fresh_db: str, tmp_path: Path, openrouter: OpenRouterStandIn
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(poll_interval=0.02),
        openrouter=OpenRouterSettings(
            api_key=openrouter.api_key, base_url=openrouter.base_url, timeout=2.0
        ),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


def headers(user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}


async def generate(
    client: AsyncTestClient[Litestar], user: uuid.UUID, **body: object
) -> dict[str, Any]:
    payload = {"model": "flux-schnell", "prompt": "a fox", "width": 256, "height": 256, **body}
    r = await client.post(
        "/v1/generate/image",
        json=payload,
        headers=headers(user) | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = (
            await client.get(f"/v1/generate/{r.json()['id']}", headers=headers(user))
        ).json()
        if job["status"] in ("succeeded", "failed"):
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_an_enhanced_prompt_is_rendered_and_the_users_words_are_kept(
    client: AsyncTestClient[Litestar], fresh_db: str
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    job = await generate(client, user, enhance=True)
    assert job["status"] == "succeeded"
    params = job["params"]
    assert params["prompt"] == enhancement_for("a fox")
    assert params["originalPrompt"] == "a fox"


async def test_a_retry_of_an_enhanced_submission_replays_without_enhancing_again(
    client: AsyncTestClient[Litestar], fresh_db: str, openrouter: OpenRouterStandIn
) -> None:
    """The enhancement is paid for per call: a retry (the app lost the first answer)
    gets the first answer back, and OpenRouter is not asked again."""
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    payload = {"model": "flux-schnell", "prompt": "a fox", "width": 256, "height": 256}
    sent = headers(user) | {"Idempotency-Key": str(uuid.uuid4())}
    first = await client.post("/v1/generate/image", json=payload | {"enhance": True}, headers=sent)
    assert first.status_code == 202, first.text

    def enhancements() -> int:  # not the captions the worker asks for meanwhile
        return sum(b"image_url" not in r.body for r in openrouter.requests)

    asked = enhancements()
    assert asked == 1
    again = await client.post("/v1/generate/image", json=payload | {"enhance": True}, headers=sent)
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    assert again.content == first.content
    assert enhancements() == asked, "the retry was enhanced again"
    other = await client.post("/v1/generate/image", json=payload | {"prompt": "x"}, headers=sent)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_mismatch"


async def test_without_enhance_the_prompt_is_left_alone(
    client: AsyncTestClient[Litestar], fresh_db: str
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    job = await generate(client, user)
    assert job["params"]["prompt"] == "a fox"
    assert "originalPrompt" not in job["params"]


async def test_generated_images_carry_their_caption(
    client: AsyncTestClient[Litestar], fresh_db: str, openrouter: OpenRouterStandIn
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    job = await generate(client, user)
    [asset] = job["assets"]
    [(image, content_type)] = openrouter.images
    assert asset["caption"] == caption_for(image, content_type)
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "SELECT caption FROM images WHERE id = %s", (uuid.UUID(asset["id"]),)
        ).fetchone()
    assert row == (asset["caption"],)


async def test_a_failing_openrouter_never_fails_a_generation(
    client: AsyncTestClient[Litestar], fresh_db: str, openrouter: OpenRouterStandIn
) -> None:
    user = uuid.uuid4()
    await grant(fresh_db, user, 5)
    openrouter.inject(Fail(500), times=100)
    job = await generate(client, user, enhance=True)
    assert job["status"] == "succeeded"
    assert job["params"]["prompt"] == "a fox", "fell back to the user's prompt"
    [asset] = job["assets"]
    assert "caption" not in asset
