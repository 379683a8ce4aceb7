"""The OpenAI moderation adapter against its stand-in on loopback: the Classifier
contract (genstudio.testing.contracts.moderation), then what only it does."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from genstudio.adapters.openai_moderation import OpenAIModerationClassifier
from genstudio.core.model.moderation import Label, Reason, Surface
from genstudio.ports.moderation import Classifier, ModerationUnavailable
from genstudio.testing.contracts.moderation import TextClassifierContract
from tests.standins.loopback import Fail, RateLimit, Stall
from tests.standins.openai_moderation import Malformed, OpenAIModerationStandIn


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenAIModerationStandIn]:
    with OpenAIModerationStandIn() as server:
        yield server


@pytest.fixture
def openai(standin: OpenAIModerationStandIn) -> OpenAIModerationClassifier:
    standin.reset()
    standin.scores = {"gore": {"violence/graphic": 0.97, "violence": 0.99}}
    standin.image_scores = {"sexual": 0.91, "sexual/minors": 0.02}
    return OpenAIModerationClassifier("sk-stand-in", base_url=standin.base_url, timeout=1.0)


class TestOpenAIModerationClassifier(TextClassifierContract):
    @pytest.fixture
    def classifier_factory(self, standin: OpenAIModerationStandIn) -> Callable[[], Classifier]:
        standin.reset()
        standin.scores = {"gore": {"violence/graphic": 0.97, "violence": 0.99}}
        standin.image_scores = {}
        return lambda: OpenAIModerationClassifier(
            "sk-stand-in", base_url=standin.base_url, timeout=1.0
        )

    @pytest.fixture
    def flagged_text(self) -> tuple[str, Reason]:
        return "some gore here", Reason.VIOLENCE_GRAPHIC


async def test_a_text_is_sent_with_the_model_and_the_key_and_scores_become_labels(
    openai: OpenAIModerationClassifier, standin: OpenAIModerationStandIn
) -> None:
    verdict = await openai.classify_text("some gore here", Surface.PROMPT)
    labels = {lb.reason: lb for lb in verdict.labels}
    assert labels[Reason.VIOLENCE_GRAPHIC] == Label(Reason.VIOLENCE_GRAPHIC, 0.97, "openai")
    assert labels[Reason.HATE].score == pytest.approx(0.0001)
    body = standin.requests[-1].json()
    assert body == {"model": "omni-moderation-latest", "input": "some gore here"}


async def test_an_image_is_sent_as_a_data_url_part(
    openai: OpenAIModerationClassifier, standin: OpenAIModerationStandIn
) -> None:
    verdict = await openai.classify_image(b"\x89PNG...", "image/png", Surface.OUTPUT)
    assert {lb.reason: lb.score for lb in verdict.labels}[Reason.SEXUAL] == 0.91
    [part] = standin.requests[-1].json()["input"]
    assert part["image_url"]["url"].startswith("data:image/png;base64,")


@pytest.mark.parametrize(
    "fault", [Fail(500), Fail(401), RateLimit(1), Malformed(), Stall(3)], ids=repr
)
async def test_every_failure_is_moderation_unavailable(
    openai: OpenAIModerationClassifier, standin: OpenAIModerationStandIn, fault: object
) -> None:
    standin.inject(fault)  # type: ignore[arg-type]
    with pytest.raises(ModerationUnavailable):
        await openai.classify_text("hello", Surface.COMMENT)


async def test_a_wrong_key_is_unavailable_not_allowed(standin: OpenAIModerationStandIn) -> None:
    wrong = OpenAIModerationClassifier("sk-wrong", base_url=standin.base_url)
    with pytest.raises(ModerationUnavailable):
        await wrong.classify_text("hello", Surface.COMMENT)
