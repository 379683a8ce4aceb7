"""The moderation ``Classifier`` contract (``genstudio.ports.moderation``), for any
classifier's adapter (a hosted moderation API, a local model).

``ClassifierContract`` holds what every classifier keeps; add
``TextClassifierContract`` for one that reads texts and ``ImageClassifierContract``
for one that sees images (a classifier that reads both subclasses both). Override
``classifier_factory`` (a function making the classifier, pointed at your stand-in),
and for each kind it reads a fixture giving content it flags, with the reason::

    class TestMyModeration(TextClassifierContract, ImageClassifierContract):
        @pytest.fixture
        def classifier_factory(self, my_standin):
            return lambda: MyClassifier(base_url=my_standin.url)

        @pytest.fixture
        def flagged_text(self):
            return "some gore here", Reason.VIOLENCE_GRAPHIC

        @pytest.fixture
        def flagged_image(self, my_standin):
            my_standin.flag_next_image("sexual")
            return PNG_BYTES, Reason.SEXUAL

A label "flags" content at a score of at least ``FLAGGED`` (0.5); ordinary content
(a prompt such as "a red fox in the snow", a flat grey picture) gets none that high.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from genstudio.adapters.memory.gpu import tiny_png
from genstudio.core.model.moderation import Classification, Reason, Surface
from genstudio.ports.moderation import Classifier, ModerationUnavailable

FLAGGED = 0.5
ORDINARY_TEXTS = ("a red fox in the snow", "a lighthouse on a cliff at dawn, oil painting")
ORDINARY_IMAGE = tiny_png(256, 256, (128, 128, 128))


def _top(verdict: Classification) -> float:
    return max((label.score for label in verdict.labels), default=0.0)


@pytest.mark.asyncio
class ClassifierContract:
    """What the moderation policy relies on from every classifier."""

    @pytest.fixture
    def classifier_factory(self) -> Callable[[], Classifier]:
        """Override: a function making the classifier under test."""
        pytest.fail(f"{type(self).__name__} must override the classifier_factory fixture")

    @pytest_asyncio.fixture
    async def classifier(
        self, classifier_factory: Callable[[], Classifier]
    ) -> AsyncIterator[Classifier]:
        made = classifier_factory()
        yield made
        close = getattr(made, "aclose", None)
        if close is not None:
            await close()

    async def test_it_has_a_name_for_the_logs(self, classifier: Classifier) -> None:
        assert isinstance(classifier.name, str) and classifier.name.strip()

    @pytest.mark.parametrize("text", ORDINARY_TEXTS)
    @pytest.mark.parametrize("surface", [Surface.PROMPT, Surface.COMMENT])
    async def test_ordinary_texts_are_not_flagged(
        self, classifier: Classifier, text: str, surface: Surface
    ) -> None:
        verdict = await classifier.classify_text(text, surface)
        assert _top(verdict) < FLAGGED, verdict
        assert verdict.rewritten in (None, text)

    @pytest.mark.parametrize("surface", [Surface.OUTPUT, Surface.AVATAR])
    async def test_an_ordinary_picture_is_not_flagged(
        self, classifier: Classifier, surface: Surface
    ) -> None:
        verdict = await classifier.classify_image(ORDINARY_IMAGE, "image/png", surface)
        assert _top(verdict) < FLAGGED, verdict

    async def test_bytes_that_are_no_image_are_not_flagged_or_make_it_unavailable(
        self, classifier: Classifier
    ) -> None:
        """Never another error, and never a refusal for what is no picture at all."""
        try:
            verdict = await classifier.classify_image(b"not an image", "image/png", Surface.OUTPUT)
        except ModerationUnavailable:
            return
        assert _top(verdict) < FLAGGED, verdict


class TextClassifierContract(ClassifierContract):
    """For a classifier that reads texts."""

    @pytest.fixture
    def flagged_text(self) -> tuple[str, Reason]:
        """Override: a text this classifier flags, and the reason it gives."""
        pytest.fail(f"{type(self).__name__} must override the flagged_text fixture")

    async def test_a_text_it_flags_gets_a_label_of_that_reason_from_it(
        self, classifier: Classifier, flagged_text: tuple[str, Reason]
    ) -> None:
        text, reason = flagged_text

        verdict = await classifier.classify_text(text, Surface.PROMPT)

        flagged = [label for label in verdict.labels if label.score >= FLAGGED]
        assert reason in [label.reason for label in flagged], verdict
        assert all(label.source == classifier.name for label in verdict.labels)


class ImageClassifierContract(ClassifierContract):
    """For a classifier that sees images."""

    @pytest.fixture
    def flagged_image(self) -> tuple[bytes, Reason]:
        """Override: a picture (PNG) this classifier flags, and the reason it gives."""
        pytest.fail(f"{type(self).__name__} must override the flagged_image fixture")

    async def test_a_picture_it_flags_gets_a_label_of_that_reason_from_it(
        self, classifier: Classifier, flagged_image: tuple[bytes, Reason]
    ) -> None:
        image, reason = flagged_image

        verdict = await classifier.classify_image(image, "image/png", Surface.OUTPUT)

        flagged = [label for label in verdict.labels if label.score >= FLAGGED]
        assert reason in [label.reason for label in flagged], verdict
        assert all(label.source == classifier.name for label in verdict.labels)

    async def test_bytes_it_cannot_decode_make_it_unavailable(self, classifier: Classifier) -> None:
        with pytest.raises(ModerationUnavailable):
            await classifier.classify_image(
                b"\x89PNG\r\n\x1a\n broken", "image/png", Surface.OUTPUT
            )
