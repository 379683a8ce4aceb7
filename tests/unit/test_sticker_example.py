"""docs/testing-kit.md's worked example, as real code: another team's sticker feature
charges 3 credits and refunds them when the GPU fails, tested with the testing kit's
fixtures only (the genstudio_* fixtures of the pytest plugin)."""

from __future__ import annotations

import uuid

import pytest

from genstudio.core.model.credits import EntryKind
from genstudio.core.model.jobs import FailureReason, JobStatus
from genstudio.core.model.pricing import (
    DEFAULT_CATALOG,
    Catalog,
    ModelKind,
    ModelSpec,
    PerImagePrice,
    SizeTier,
)
from genstudio.testing.application import MemoryApplication, Users
from genstudio.testing.gpu import ScriptedGpu
from genstudio.testing.http import MemoryHttpApp

# -- the team's feature: a sticker model, 3 credits a sticker up to 1024x1024 -------------

STICKER = ModelSpec(
    id="sticker",
    kind=ModelKind.IMAGE,
    display_name="Sticker",
    provider_model="our-team/sticker-lora",
    price=PerImagePrice((SizeTier(max_megapixels=1.06, credits=3),)),
    max_width=1024,
    max_height=1024,
    max_count=1,
    description="A die-cut sticker of anything.",
)
CATALOG = Catalog([*DEFAULT_CATALOG.all(), STICKER])


def sticker_prompt(subject: str) -> str:
    return f"die-cut sticker of {subject}, thick white border, flat colours"


# -- its tests ------------------------------------------------------------------------------


@pytest.fixture
def genstudio_catalog() -> Catalog:
    """The kit's catalog fixture, overridden: genstudio's models and ours."""
    return CATALOG


async def test_a_sticker_costs_3_credits(
    genstudio_app: MemoryApplication, genstudio_users: Users
) -> None:
    user = await genstudio_users.with_credits(10)

    submitted = await genstudio_app.submit_image(
        user, sticker_prompt("a cat"), model="sticker", width=1024, height=1024
    )
    assert await genstudio_app.balance(user) == 7  # held while the GPU works

    [job] = await genstudio_app.run_jobs()

    assert job.id == submitted.job_id and job.status is JobStatus.SUCCEEDED
    assert await genstudio_app.balance(user) == 7  # spent
    [sticker] = await genstudio_app.media_of(job.id)
    assert (sticker.width, sticker.height) == (1024, 1024)


async def test_when_the_gpu_fails_the_3_credits_come_back(
    genstudio_app: MemoryApplication, genstudio_gpu: ScriptedGpu, genstudio_users: Users
) -> None:
    genstudio_gpu.fails(FailureReason.INFRASTRUCTURE, "out of GPU memory", times=None)
    user = await genstudio_users.with_credits(10)

    submitted = await genstudio_app.submit_image(
        user, sticker_prompt("a dog"), model="sticker", width=1024, height=1024
    )
    await genstudio_app.run_jobs()  # every attempt fails; genstudio gives up after 3

    assert submitted.job_id is not None
    job = await genstudio_app.job(submitted.job_id)
    assert job.status is JobStatus.FAILED and job.attempts == 3
    assert await genstudio_app.balance(user) == 10
    moves = [(e.kind, e.amount) for e in await genstudio_app.ledger(user)]
    assert moves == [(EntryKind.GRANT, 10), (EntryKind.HOLD, -3), (EntryKind.RELEASE, 3)]
    assert await genstudio_app.media_of(job.id) == []


async def test_over_http_a_refused_sticker_is_refunded_at_once(
    genstudio_http: MemoryHttpApp, genstudio_gpu: ScriptedGpu
) -> None:
    genstudio_gpu.fails(FailureReason.CONTENT, "the provider refused the picture")
    user = await genstudio_http.app.users.with_credits(10)
    me = genstudio_http.headers(user)

    answer = await genstudio_http.client.post(
        "/v1/generate/image",
        json={"model": "sticker", "prompt": sticker_prompt("a frog"), "width": 1024},
        headers=me | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["cost"] == 3
    assert (await genstudio_http.client.get("/v1/me", headers=me)).json()["credits"] == 7

    await genstudio_http.run_jobs()

    job = (
        await genstudio_http.client.get(f"/v1/generate/{answer.json()['id']}", headers=me)
    ).json()
    assert (job["status"], job["attempts"], job["error"]["reason"]) == ("failed", 1, "content")
    assert (await genstudio_http.client.get("/v1/me", headers=me)).json()["credits"] == 10
