"""Generated outputs through moderation before anything of them is stored (issue #19):
a refused output fails the job for good with the content reason, releases its hold,
records a strike against its user and leaves no file or media row behind."""

from __future__ import annotations

import uuid

import pytest

from genstudio.adapters.imaging import PillowImageInspector
from genstudio.core.model.credits import EntryKind, HoldStatus
from genstudio.core.model.job_params import ImageParams, VideoInput
from genstudio.core.model.jobs import FailureReason, JobStatus
from genstudio.core.model.moderation import Classification, Label, Reason, Surface
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.submit import submit_video
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.ports.moderation import ModerationUnavailable
from tests.unit.support import POLICY, Studio

CREDITS = 400


class Judging:
    """A classifier that gives every image the score it is set to (a real classifier
    on the port, not a mock): 0.99 of ``reason`` refuses on the output surface."""

    name = "judging"

    def __init__(self, score: float, reason: Reason = Reason.SEXUAL) -> None:
        self.score = score
        self.reason = reason
        self.down = False
        self.seen: list[tuple[str, Surface]] = []

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        if self.down:
            raise ModerationUnavailable("the judge is away")
        self.seen.append((content_type, surface))
        return Classification((Label(self.reason, self.score, self.name),))


def moderated_studio(judge: Judging, *, fail_closed: bool = False) -> tuple[Studio, Moderation]:
    studio = Studio()
    moderation = Moderation(studio.factory, studio.clock, [judge], fail_closed=fail_closed)
    studio.processor = JobProcessor(
        studio.factory,
        studio.gpu,
        studio.storage,
        studio.clock,
        DEFAULT_CATALOG,
        policy=POLICY,
        moderation=moderation,
    )
    return studio, moderation


async def assert_refused_and_nothing_kept(
    studio: Studio, moderation: Moderation, user: uuid.UUID, job_id: uuid.UUID
) -> None:
    job = await studio.job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.reason is FailureReason.CONTENT
    assert "sexual" in job.error.message
    assert job.attempts == 1, "a refusal is final: not retried, not failed over"
    assert (await studio.hold_of(job)).status is HoldStatus.RELEASED
    state = await studio.account(user)
    assert state.balance == CREDITS
    assert len(state.of_kind(EntryKind.RELEASE)) == 1
    assert state.of_kind(EntryKind.SETTLE) == []
    assert studio.storage.objects == {}, "no output file is stored"
    assert await studio.media_of(job.id) == [] and job.asset_ids == ()
    standing = await moderation.standing(user)
    assert standing.points == 1
    async with studio.factory() as uow:
        [strike] = await uow.moderation.strikes(user, studio.clock.now().replace(year=2000))
    assert (strike.reason, strike.surface) == (Reason.SEXUAL, Surface.OUTPUT)
    assert strike.reference == f"job:{job.id}"


async def test_a_refused_image_output_fails_the_job_releases_its_hold_and_stores_nothing() -> None:
    judge = Judging(0.99)
    studio, moderation = moderated_studio(judge)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, ImageParams(prompt="a beach", count=2))

    await studio.drive(job.id)

    await assert_refused_and_nothing_kept(studio, moderation, user, job.id)
    assert judge.seen[0] == ("image/png", Surface.OUTPUT)
    assert len(studio.gpu.submitted) == 1, "the provider is not asked again"


async def test_an_allowed_image_output_is_checked_and_stored() -> None:
    judge = Judging(0.1)
    studio, moderation = moderated_studio(judge)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, ImageParams(prompt="a beach", count=2))

    done = await studio.drive(job.id)

    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert len(judge.seen) == 2, "every image of the job is checked"
    assert len(await studio.media_of(job.id)) == 2
    assert (await moderation.standing(user)).points == 0


async def test_a_video_whose_poster_frame_is_refused_fails_and_stores_neither() -> None:
    judge = Judging(0.99)
    studio, moderation = moderated_studio(judge)
    user = await studio.user_with(CREDITS)
    submitted = await submit_video(
        studio.factory,
        studio.queue,
        studio.clock,
        DEFAULT_CATALOG,
        studio.storage,
        PillowImageInspector(),
        user_id=user,
        email=None,
        model_id="wan-2.1",
        input_type=VideoInput.TEXT,
        prompt="waves at night",
        idempotency_key=None,
        request_hash="video-1",
    )
    assert submitted.job_id is not None

    await studio.drive(submitted.job_id)

    await assert_refused_and_nothing_kept(studio, moderation, user, submitted.job_id)
    assert judge.seen == [("image/png", Surface.OUTPUT)], "one sampled frame: the poster"


@pytest.mark.parametrize("fail_closed", [False, True])
async def test_an_unavailable_classifier_passes_outputs_unless_moderation_fails_closed(
    fail_closed: bool,
) -> None:
    judge = Judging(0.99)
    judge.down = True
    studio, moderation = moderated_studio(judge, fail_closed=fail_closed)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, ImageParams(prompt="a beach"))

    done = await studio.drive(job.id)

    assert done is not None
    if fail_closed:  # not judged: not shown; the credits come back, no strike
        assert done.status is JobStatus.FAILED
        assert done.error is not None and done.error.reason is FailureReason.INTERNAL
        assert studio.storage.objects == {}
        assert (await studio.account(user)).balance == CREDITS
    else:
        assert done.status is JobStatus.SUCCEEDED
    assert (await moderation.standing(user)).points == 0
