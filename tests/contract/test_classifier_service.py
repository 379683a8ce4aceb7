"""``genstudio classifier`` (entrypoints/classifier.py) and its client
(adapters/classifier_service): the Classifier contract over the real service on
loopback, NudeNet inside it; then what the wire adds: the token, content types, the
size limit, unreadable bytes, a service down or slow, readiness, and at most
``threads`` images classified at once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from skimage import data

from genstudio.adapters.classifier_service import CLASSIFY_IMAGE_PATH, ClassifierServiceClient
from genstudio.adapters.memory.gpu import tiny_png
from genstudio.adapters.nudenet import NudeNetClassifier
from genstudio.core.model.moderation import Classification, Label, Reason, Surface
from genstudio.entrypoints.classifier import create_classifier_app
from genstudio.ports.moderation import Classifier, ModerationUnavailable, UnreadableImage
from genstudio.testing.contracts.moderation import ImageClassifierContract
from tests.servers import free_port, serving

TOKEN = "classifier-token-" + "c" * 24


def png(pixels: np.ndarray[Any, Any]) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


ASTRONAUT = png(data.astronaut())  # type: ignore[no-untyped-call]
GREY = tiny_png(64, 64, (128, 128, 128))


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    """The service over NudeNet counting faces as what it refuses (stated, as in
    test_nudenet_classifier.py: no explicit image is shipped), with a token."""
    app = create_classifier_app(
        NudeNetClassifier(parts=frozenset({"FACE_FEMALE"})), token=TOKEN, warm_up=GREY
    )
    with serving(app, lifespan="on") as url:
        yield url


class TestClassifierService(ImageClassifierContract):
    @pytest.fixture
    def classifier_factory(self, service: str) -> Callable[[], Classifier]:
        return lambda: ClassifierServiceClient(service, token=TOKEN)

    @pytest.fixture
    def flagged_image(self) -> tuple[bytes, Reason]:
        return ASTRONAUT, Reason.SEXUAL


async def test_the_verdict_is_the_in_process_models(service: str) -> None:
    client = ClassifierServiceClient(service, token=TOKEN)
    try:
        verdict = await client.classify_image(ASTRONAUT, "image/png", Surface.AVATAR)
    finally:
        await client.aclose()
    local = await NudeNetClassifier(parts=frozenset({"FACE_FEMALE"})).classify_image(
        ASTRONAUT, "image/png", Surface.AVATAR
    )
    # the same reasons and scores as in-process; the source names the layer that asked
    assert [(x.reason, x.score) for x in verdict.labels] == [
        (x.reason, x.score) for x in local.labels
    ]
    assert verdict.labels and {x.source for x in verdict.labels} == {"classifier-service"}


async def test_a_caller_without_the_token_is_refused(service: str) -> None:
    for token in (None, "wrong-" + TOKEN):
        client = ClassifierServiceClient(service, token=token)
        try:
            with pytest.raises(ModerationUnavailable, match="401") as caught:
                await client.classify_image(GREY, "image/png", Surface.OUTPUT)
        finally:
            await client.aclose()
        assert not isinstance(caught.value, UnreadableImage)  # a setup fault, not the image's


def test_the_wire_refuses_what_is_not_an_image_with_problems(service: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    url = service + CLASSIFY_IMAGE_PATH
    wrong_type = httpx.post(url, content=GREY, headers={**auth, "Content-Type": "text/plain"})
    assert wrong_type.status_code == 415
    assert wrong_type.headers["content-type"].startswith("application/problem+json")
    assert wrong_type.json()["code"] == "unsupported_media_type"
    garbage = httpx.post(
        url, content=b"not a picture", headers={**auth, "Content-Type": "image/png"}
    )
    assert (garbage.status_code, garbage.json()["code"]) == (422, "unreadable_image")
    surface = httpx.post(
        url,
        content=GREY,
        headers={**auth, "Content-Type": "image/png", "X-Genstudio-Surface": "elsewhere"},
    )
    assert (surface.status_code, surface.json()["code"]) == (422, "invalid_input")


async def test_unreadable_bytes_are_the_images_fault_as_in_process(service: str) -> None:
    client = ClassifierServiceClient(service, token=TOKEN)
    try:
        with pytest.raises(UnreadableImage):
            await client.classify_image(b"\x89PNG but not really", "image/png", Surface.OUTPUT)
    finally:
        await client.aclose()
    with pytest.raises(UnreadableImage):  # what the local classifier says of the same bytes
        await NudeNetClassifier().classify_image(
            b"\x89PNG but not really", "image/png", Surface.OUTPUT
        )


class Counting:
    """An image classifier that takes ``seconds`` per image, recording how many ran at
    once; ``fail`` makes it unavailable."""

    name = "counting"

    def __init__(self, seconds: float = 0.0, fail: bool = False) -> None:
        self.seconds, self.fail = seconds, fail
        self.running = self.most = self.calls = 0

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        self.running += 1
        self.calls += 1
        self.most = max(self.most, self.running)
        try:
            await asyncio.sleep(self.seconds)
            if self.fail:
                raise ModerationUnavailable("the model is gone")
            return Classification((Label(Reason.SEXUAL, 0.25, self.name),))
        finally:
            self.running -= 1


async def test_at_most_threads_images_are_classified_at_once() -> None:
    counting = Counting(seconds=0.05)
    with serving(create_classifier_app(counting, threads=2)) as url:
        client = ClassifierServiceClient(url)
        try:
            verdicts = await asyncio.gather(
                *(client.classify_image(GREY, "image/png", Surface.OUTPUT) for _ in range(8))
            )
        finally:
            await client.aclose()
    assert (counting.calls, counting.most) == (8, 2)  # all answered, two at a time
    assert all(v.labels == (Label(Reason.SEXUAL, 0.25, "classifier-service"),) for v in verdicts)


async def test_a_model_that_cannot_answer_is_503_and_unavailable_to_the_caller() -> None:
    with serving(create_classifier_app(Counting(fail=True))) as url:
        async with httpx.AsyncClient() as raw:
            answer = await raw.post(
                url + CLASSIFY_IMAGE_PATH, content=GREY, headers={"Content-Type": "image/png"}
            )
        assert (answer.status_code, answer.json()["code"]) == (503, "classifier_unavailable")
        client = ClassifierServiceClient(url)
        try:
            with pytest.raises(ModerationUnavailable, match="503: the model is gone") as caught:
                await client.classify_image(GREY, "image/png", Surface.OUTPUT)
        finally:
            await client.aclose()
        assert not isinstance(caught.value, UnreadableImage)


async def test_a_body_over_the_limit_is_413_and_never_classified() -> None:
    counting = Counting()
    with serving(create_classifier_app(counting, max_bytes=1024)) as url:
        client = ClassifierServiceClient(url)
        try:
            with pytest.raises(UnreadableImage):
                await client.classify_image(b"\0" * 4096, "image/png", Surface.OUTPUT)
        finally:
            await client.aclose()
    assert counting.calls == 0


async def test_a_service_down_or_too_slow_is_unavailable_within_the_timeout() -> None:
    down = ClassifierServiceClient(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    try:
        with pytest.raises(ModerationUnavailable, match="failed"):
            await down.classify_image(GREY, "image/png", Surface.OUTPUT)
    finally:
        await down.aclose()
    with serving(create_classifier_app(Counting(seconds=5))) as url:
        slow = ClassifierServiceClient(url, timeout=0.3)
        try:
            started = asyncio.get_running_loop().time()
            with pytest.raises(ModerationUnavailable):
                await slow.classify_image(GREY, "image/png", Surface.OUTPUT)
            assert asyncio.get_running_loop().time() - started < 3
        finally:
            await slow.aclose()


def test_it_is_ready_with_the_model_loaded_and_counts_what_it_classified() -> None:
    counting = Counting()
    with serving(create_classifier_app(counting, warm_up=GREY), lifespan="on") as url:
        assert counting.calls == 1  # the warm-up ran before the port answered
        before = httpx.get(url + "/health/ready").json()
        assert before == {"status": "ok", "classifier": "counting", "classified": 0}
        for _ in range(3):
            httpx.post(
                url + CLASSIFY_IMAGE_PATH, content=GREY, headers={"Content-Type": "image/png"}
            )
        assert httpx.get(url + "/health/ready").json()["classified"] == 3
        assert httpx.get(url + "/health/live").json() == {"status": "ok"}
