"""The Captioner and PromptEnhancer contracts over memory and OpenRouter (its stand-in);
then OpenRouter's request shape, and every failure knob: captions fail cleanly,
enhancement falls back to the user's prompt within the timeout."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from genstudio.adapters.memory import FixedCaptioner, SuffixPromptEnhancer
from genstudio.adapters.openrouter import OpenRouterClient
from genstudio.ports.ai import (
    MAX_CAPTION,
    MAX_PROMPT,
    Captioner,
    CaptionUnavailable,
    PromptEnhancer,
)
from tests.standins.loopback import Fail, Fault, RateLimit, Stall
from tests.standins.openrouter import (
    Answer,
    EmptyAnswer,
    EmptyChoices,
    ErrorInBody,
    LongAnswer,
    Malformed,
    OpenRouterStandIn,
    caption_for,
    enhancement_for,
)

TIMEOUT = 0.5
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(64))
IMAGES = {
    "image/png": PNG,
    "image/jpeg": b"\xff\xd8\xff\xe0 a jpeg",
    "image/webp": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    "image/gif": b"GIF89a a gif",
}


@pytest.fixture(scope="module")
def standin() -> Iterator[OpenRouterStandIn]:
    with OpenRouterStandIn() as server:
        yield server


def make_client(standin: OpenRouterStandIn, **overrides: object) -> OpenRouterClient:
    options: dict[str, object] = {
        "base_url": standin.base_url,
        "api_key": standin.api_key,
        "caption_model": "vision/stand-in-vl",
        "enhance_model": "text/stand-in-chat",
        "timeout": TIMEOUT,
        "app_url": "https://genstudio.example",
        "app_title": "genstudio",
    }
    options.update(overrides)
    return OpenRouterClient(**options)  # type: ignore[arg-type]


@pytest.fixture
async def openrouter(standin: OpenRouterStandIn) -> AsyncIterator[OpenRouterClient]:
    standin.reset()
    client = make_client(standin)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "openrouter"])
def captioner(request: pytest.FixtureRequest) -> Captioner:
    if request.param == "memory":
        return FixedCaptioner()
    client: OpenRouterClient = request.getfixturevalue("openrouter")
    return client


@pytest.fixture(params=["memory", "openrouter"])
def enhancer(request: pytest.FixtureRequest) -> PromptEnhancer:
    if request.param == "memory":
        return SuffixPromptEnhancer()
    client: OpenRouterClient = request.getfixturevalue("openrouter")
    return client


# -- the contracts ---------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(IMAGES))
async def test_a_caption_is_one_short_line(captioner: Captioner, content_type: str) -> None:
    caption = await captioner.caption(IMAGES[content_type], content_type)
    assert caption.strip() == caption
    assert caption
    assert "\n" not in caption
    assert len(caption) <= MAX_CAPTION


@pytest.mark.parametrize("content_type", ["video/mp4", "image/heic", "application/pdf", ""])
async def test_only_image_types_are_captioned(captioner: Captioner, content_type: str) -> None:
    with pytest.raises(CaptionUnavailable):
        await captioner.caption(PNG, content_type)


async def test_no_bytes_no_caption(captioner: Captioner) -> None:
    with pytest.raises(CaptionUnavailable):
        await captioner.caption(b"", "image/png")


async def test_an_enhanced_prompt_is_a_longer_prompt(enhancer: PromptEnhancer) -> None:
    enhanced = await enhancer.enhance("a lighthouse at dusk")
    assert enhanced.startswith("a lighthouse at dusk")
    assert len("a lighthouse at dusk") < len(enhanced) <= MAX_PROMPT


async def test_enhancement_never_makes_a_prompt_too_long(enhancer: PromptEnhancer) -> None:
    prompt = "a " * (MAX_PROMPT // 2 - 1) + "x"
    assert len(prompt) == MAX_PROMPT - 1
    assert await enhancer.enhance(prompt) == prompt


@pytest.mark.parametrize("prompt", ["", "   "])
async def test_a_blank_prompt_stays_as_it_is(enhancer: PromptEnhancer, prompt: str) -> None:
    assert await enhancer.enhance(prompt) == prompt


async def test_memory_implementations_are_what_they_say() -> None:
    assert await FixedCaptioner().caption(PNG, "image/png") == "an image"
    assert await SuffixPromptEnhancer().enhance("a cat") == "a cat, highly detailed"


# -- OpenRouter: the request ----------------------------------------------------------------


@pytest.mark.parametrize("content_type", sorted(IMAGES))
async def test_the_image_travels_as_a_base64_data_url_to_the_vision_model(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn, content_type: str
) -> None:
    image = IMAGES[content_type]

    caption = await openrouter.caption(image, content_type)

    assert caption == caption_for(image, content_type)
    assert standin.images == [(image, content_type)]
    body = standin.requests[-1].json()
    assert body["model"] == "vision/stand-in-vl"
    user = body["messages"][-1]
    assert user["role"] == "user"
    assert [part["type"] for part in user["content"]] == ["text", "image_url"]
    url = user["content"][1]["image_url"]["url"]
    assert url == f"data:{content_type};base64,{base64.b64encode(image).decode()}"


async def test_requests_carry_the_key_and_the_app_headers(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn
) -> None:
    await openrouter.enhance("a cat")
    request = standin.requests[-1]
    assert (request.method, request.path) == ("POST", "/api/v1/chat/completions")
    assert request.headers["authorization"] == f"Bearer {standin.api_key}"
    assert request.headers["http-referer"] == "https://genstudio.example"
    assert request.headers["x-title"] == "genstudio"
    assert request.headers["content-type"] == "application/json"


async def test_enhancement_asks_the_text_model(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn
) -> None:
    assert await openrouter.enhance("a red fox in snow") == enhancement_for("a red fox in snow")
    body = standin.requests[-1].json()
    assert body["model"] == "text/stand-in-chat"
    assert body["messages"][-1] == {"role": "user", "content": "a red fox in snow"}
    assert body["messages"][0]["role"] == "system"


async def test_the_stand_in_refuses_an_image_that_is_not_what_it_claims(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn
) -> None:
    with pytest.raises(CaptionUnavailable, match="400"):
        await openrouter.caption(b"GIF89a not a png", "image/png")
    assert standin.images == []


@pytest.mark.parametrize(
    ("answer", "caption"),
    [
        ('"A lighthouse at dusk."', "A lighthouse at dusk."),
        ("  A lighthouse\n on a  cliff.\n", "A lighthouse on a cliff."),
        ("**A lighthouse.**", "A lighthouse."),
    ],
)
async def test_captions_are_cleaned_up(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn, answer: str, caption: str
) -> None:
    standin.inject(Answer(answer))
    assert await openrouter.caption(PNG, "image/png") == caption


async def test_a_long_caption_is_shortened_at_a_word(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn
) -> None:
    standin.inject(LongAnswer(3000))
    caption = await openrouter.caption(PNG, "image/png")
    assert len(caption) <= MAX_CAPTION
    assert caption.endswith("very…")


@pytest.mark.parametrize(
    "answer",
    ['"a red fox in snow, soft light"', "Enhanced prompt: a red fox in snow, soft light"],
)
async def test_enhanced_prompts_lose_quotes_and_labels(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn, answer: str
) -> None:
    standin.inject(Answer(answer))
    assert await openrouter.enhance("a red fox in snow") == "a red fox in snow, soft light"


# -- OpenRouter: every failure knob -------------------------------------------------------------

KNOBS: dict[str, Fault] = {
    "500": Fail(500),
    "502": Fail(502, "model is down"),
    "503": Fail(503, "no provider available"),
    "429": RateLimit(retry_after=1),
    "timeout": Stall(3),
    "malformed-json": Malformed(),
    "empty-choices": EmptyChoices(),
    "empty-answer": EmptyAnswer(),
    "blank-answer": Answer(" \n "),
    "error-in-200": ErrorInBody(),
    "402-no-credits": Fail(402, "Insufficient credits"),
}


@pytest.mark.parametrize("knob", sorted(KNOBS))
async def test_enhancement_falls_back_to_the_prompt_within_the_timeout(
    openrouter: OpenRouterClient,
    standin: OpenRouterStandIn,
    caplog: pytest.LogCaptureFixture,
    knob: str,
) -> None:
    standin.inject(KNOBS[knob])
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="genstudio.openrouter"):
        enhanced = await openrouter.enhance("a lighthouse at dusk")

    assert enhanced == "a lighthouse at dusk"
    assert time.monotonic() - started < TIMEOUT + 0.5
    [record] = [r for r in caplog.records if r.name == "genstudio.openrouter"]
    assert record.levelno == logging.WARNING
    assert getattr(record, "reason", "")
    assert len(standin.requests) == 1  # one try: the user is waiting


async def test_enhancement_falls_back_when_the_answer_is_too_long(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    standin.inject(LongAnswer(MAX_PROMPT + 1))
    with caplog.at_level(logging.WARNING, logger="genstudio.openrouter"):
        assert await openrouter.enhance("a cat") == "a cat"
    assert "over 2000" in caplog.records[-1].reason  # type: ignore[attr-defined]


@pytest.mark.parametrize("knob", sorted(KNOBS))
async def test_a_caption_that_cannot_be_made_is_caption_unavailable(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn, knob: str
) -> None:
    standin.inject(KNOBS[knob])
    started = time.monotonic()
    with pytest.raises(CaptionUnavailable):
        await openrouter.caption(PNG, "image/png")
    assert time.monotonic() - started < TIMEOUT + 0.5


async def test_a_wrong_key_means_no_caption_and_the_original_prompt(
    standin: OpenRouterStandIn,
) -> None:
    client = make_client(standin, api_key="sk-or-v1-wrong")
    with pytest.raises(CaptionUnavailable, match="401"):
        await client.caption(PNG, "image/png")
    assert await client.enhance("a cat") == "a cat"
    await client.aclose()


async def test_an_unreachable_service_means_no_caption_and_the_original_prompt() -> None:
    client = OpenRouterClient(
        base_url="http://127.0.0.1:9/api/v1",
        api_key="k",
        caption_model="m",
        enhance_model="m",
        timeout=TIMEOUT,
    )
    with pytest.raises(CaptionUnavailable, match="unreachable"):
        await client.caption(PNG, "image/png")
    assert await client.enhance("a cat") == "a cat"
    await client.aclose()


async def test_the_service_recovers_after_a_fault(
    openrouter: OpenRouterClient, standin: OpenRouterStandIn
) -> None:
    standin.inject(Fail(503))
    assert await openrouter.enhance("a cat") == "a cat"
    assert await openrouter.enhance("a cat") == enhancement_for("a cat")
