"""The local image classifier on real photographs (scikit-image's, shipped in its
wheel). No explicit image is shipped: the refusal path runs on the model's real
output for a safe photograph with the classifier configured, in this test only, to
count faces as what it refuses."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from PIL import Image
from skimage import data

from genstudio.adapters.memory.clock import FakeClock
from genstudio.adapters.memory.uow import InMemoryUnitOfWorkFactory
from genstudio.adapters.nudenet import NudeNetClassifier, available
from genstudio.core.model.moderation import ContentRefused, Reason, Surface
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.moderation import Classifier, ModerationUnavailable
from genstudio.testing.contracts.moderation import ImageClassifierContract


def png(pixels: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


ASTRONAUT = png(data.astronaut())  # type: ignore[no-untyped-call]
CAT = png(data.chelsea())  # type: ignore[no-untyped-call]


class TestNudeNetClassifier(ImageClassifierContract):
    """The Classifier contract (genstudio.testing.contracts.moderation); faces are
    counted as what it refuses (stated, as below), so a safe photograph is flagged."""

    @pytest.fixture
    def classifier_factory(self) -> Callable[[], Classifier]:
        return lambda: NudeNetClassifier(parts=frozenset({"FACE_FEMALE"}))

    @pytest.fixture
    def flagged_image(self) -> tuple[bytes, Reason]:
        return ASTRONAUT, Reason.SEXUAL


def test_the_model_ships_in_the_wheel_and_nothing_is_fetched() -> None:
    assert available()


@pytest.mark.parametrize("image", [ASTRONAUT, CAT], ids=["astronaut", "cat"])
async def test_safe_photographs_get_no_label_and_are_allowed_as_outputs(image: bytes) -> None:
    classifier = NudeNetClassifier()
    verdict = await classifier.classify_image(image, "image/png", Surface.OUTPUT)
    assert verdict.labels == ()
    moderation = Moderation(InMemoryUnitOfWorkFactory(), FakeClock(), [classifier])
    assert not (await moderation.judge_image(image, "image/png", Surface.OUTPUT)).refused


async def test_a_detection_refuses_through_the_policy_and_records_a_strike() -> None:
    # stated: faces counted as sexual content here only, so a safe photograph's real
    # detections (the astronaut's face, ~0.7) drive the refusal path end to end
    counting_faces = NudeNetClassifier(parts=frozenset({"FACE_FEMALE"}))
    verdict = await counting_faces.classify_image(ASTRONAUT, "image/png", Surface.AVATAR)
    [label] = verdict.labels
    assert (label.reason, label.source) == (Reason.SEXUAL, "nudenet") and label.score > 0.5
    moderation = Moderation(InMemoryUnitOfWorkFactory(), FakeClock(), [counting_faces])
    user = uuid.uuid4()
    with pytest.raises(ContentRefused) as refused:
        await moderation.check_image(
            ASTRONAUT, "image/png", Surface.AVATAR, user_id=user, field="avatar"
        )
    assert (refused.value.reason, refused.value.field) == (Reason.SEXUAL, "avatar")
    assert (await moderation.standing(user)).points == 1


async def test_bytes_that_are_not_an_image_make_the_classifier_unavailable() -> None:
    with pytest.raises(ModerationUnavailable):
        await NudeNetClassifier().classify_image(b"not an image", "image/png", Surface.OUTPUT)


async def test_grey_and_transparent_images_are_classified_in_colour() -> None:
    grey = png(data.camera())  # type: ignore[no-untyped-call]
    opaque = np.full((512, 512), 255, np.uint8)
    rgba = png(np.dstack([data.astronaut(), opaque]))  # type: ignore[no-untyped-call]
    for image in (grey, rgba):
        assert (
            await NudeNetClassifier().classify_image(image, "image/png", Surface.OUTPUT)
        ).labels == ()
