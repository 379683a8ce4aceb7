"""Prompts through moderation on submission (issue #19): after the free checks, before
anything is held or any paid call is made."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from genstudio.core.model.errors import InsufficientCredits
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.moderation import (
    Classification,
    ContentRefused,
    GenerationSuspended,
    Label,
    Reason,
    StrikePolicy,
    Surface,
)
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.submit import submit_image
from genstudio.core.services.moderation.service import Moderation
from tests.unit.support import Studio


class Remote:
    """A classifier standing in for a service outside the process; counts calls."""

    name = "remote"

    def __init__(self) -> None:
        self.calls = 0

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        self.calls += 1
        score = 0.99 if "gore" in text else 0.0
        return Classification((Label(Reason.VIOLENCE_GRAPHIC, score, self.name),))

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        return Classification()


async def submit(
    studio: Studio, moderation: Moderation, user: uuid.UUID, prompt: str, key: str | None = None
) -> object:
    params = ImageParams(prompt=prompt)
    return await submit_image(
        studio.factory,
        studio.queue,
        studio.clock,
        DEFAULT_CATALOG,
        user_id=user,
        email=None,
        model_id="flux-schnell",
        params=params,
        idempotency_key=key,
        request_hash=msgspec.json.encode(params).hex(),
        moderation=moderation,
    )


async def test_a_refused_prompt_holds_nothing_queues_nothing_and_counts_a_strike() -> None:
    studio = Studio()
    user = await studio.user_with(100)
    moderation = Moderation(studio.factory, studio.clock, [Remote()])
    with pytest.raises(ContentRefused) as refused:
        await submit(studio, moderation, user, "lots of gore")
    assert (refused.value.reason, refused.value.field) == (Reason.VIOLENCE_GRAPHIC, "prompt")
    assert await studio.jobs_of(user) == []
    async with studio.factory() as uow:
        assert await uow.ledger.balance(user) == 100
    assert (await moderation.standing(user)).points == 1


async def test_an_allowed_prompt_is_submitted() -> None:
    studio = Studio()
    user = await studio.user_with(100)
    moderation = Moderation(studio.factory, studio.clock, [Remote()])
    await submit(studio, moderation, user, "a red fox")
    assert len(await studio.jobs_of(user)) == 1


async def test_a_remote_classifier_is_not_asked_for_a_request_the_balance_refuses() -> None:
    studio = Studio()
    user = await studio.user_with(0)
    remote = Remote()
    moderation = Moderation(studio.factory, studio.clock, [remote], remote=True)
    with pytest.raises(InsufficientCredits):
        await submit(studio, moderation, user, "lots of gore")
    assert remote.calls == 0


async def test_a_suspended_user_is_refused_before_anything_is_held() -> None:
    studio = Studio()
    user = await studio.user_with(100)
    moderation = Moderation(
        studio.factory, studio.clock, [Remote()], strikes=StrikePolicy(suspend_at=1)
    )
    with pytest.raises(ContentRefused):
        await submit(studio, moderation, user, "gore")
    with pytest.raises(GenerationSuspended):
        await submit(studio, moderation, user, "a red fox")
    assert await studio.jobs_of(user) == []
