"""The worker contract both remote GPU adapters share: failure classes, output
decoding, Retry-After, backoff and the token bucket (no network)."""

from __future__ import annotations

import base64
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from genstudio.adapters.gpu_http import (
    Backoff,
    TokenBucket,
    classify_failure,
    decode_images,
    decode_outputs,
    worker_input,
)
from genstudio.adapters.gpu_http.calls import retry_after_seconds
from genstudio.adapters.memory.gpu import tiny_png
from genstudio.core.model.job_params import EditParams, ImageParams, VideoInput, VideoParams
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.ports.gpu import GpuRequest, ProviderInput, ProviderUnavailable

RUNPOD_RAISED = json.dumps(
    {"error_type": "<class 'ContentPolicyError'>", "error_message": "CONTENT_POLICY: nsfw"}
)


@pytest.mark.parametrize(
    ("error", "error_type", "reason"),
    [
        ("CONTENT_POLICY: the prompt was refused", None, FailureReason.CONTENT),
        ("refused [content_policy]", None, FailureReason.CONTENT),
        ("refused", "content", FailureReason.CONTENT),
        (RUNPOD_RAISED, None, FailureReason.CONTENT),
        ("ran too long", "timeout", FailureReason.TIMEOUT),
        ("CUDA out of memory", None, FailureReason.INFRASTRUCTURE),
        ("CUDA out of memory", "infrastructure", FailureReason.INFRASTRUCTURE),
        (None, None, FailureReason.INFRASTRUCTURE),
        ({"nested": "object"}, None, FailureReason.INFRASTRUCTURE),
    ],
)
def test_a_failure_is_classed_by_the_documented_markers(
    error: object, error_type: str | None, reason: FailureReason
) -> None:
    got = classify_failure(error, error_type)
    assert got.reason is reason
    assert got.message


def test_runpod_python_errors_show_their_message_not_the_json() -> None:
    assert classify_failure(RUNPOD_RAISED).message == "CONTENT_POLICY: nsfw"


def test_outputs_decode_from_base64_data_uris_and_urls() -> None:
    png = tiny_png(8, 8)
    b64 = base64.b64encode(png).decode()

    outputs = decode_images(
        {
            "images": [
                {"base64": b64},
                {"base64": f"data:image/png;base64,{b64}", "content_type": "image/png"},
                {"url": "https://bucket.example/x.png", "content_type": "image/jpeg"},
            ]
        }
    )

    assert not isinstance(outputs, JobError)
    assert [o.data for o in outputs] == [png, png, None]
    assert outputs[2].url == "https://bucket.example/x.png"
    assert outputs[2].content_type == "image/jpeg"


@pytest.mark.parametrize(
    "output",
    [
        None,
        {},
        {"images": []},
        {"images": "nope"},
        {"images": [{"base64": "***"}]},
        {"images": [{"url": "file:///etc/passwd"}]},
        {"images": [{"base64": "aGk=", "content_type": "text/html"}]},
        {"images": [42]},
    ],
)
def test_outputs_that_break_the_contract_are_infrastructure_failures(output: object) -> None:
    got = decode_images(output)
    assert isinstance(got, JobError)
    assert got.reason is FailureReason.INFRASTRUCTURE


def test_edit_and_video_jobs_name_their_uploads_as_urls() -> None:
    edit = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="m",
        params=EditParams(prompt="x", image_key="u/a.png", mask_key="u/b.png", width=64, height=64),
        inputs=(
            ProviderInput(name="image", url="https://s/a?sig"),
            ProviderInput(name="mask", url="https://s/b?sig"),
        ),
    )
    body = worker_input(edit, name="modal")
    assert body["kind"] == "edit"
    assert (body["image_url"], body["mask_url"]) == ("https://s/a?sig", "https://s/b?sig")
    video = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="m",
        params=VideoParams(
            prompt="x",
            input_type=VideoInput.KEYFRAMES,
            first_frame_key="u/f.png",
            last_frame_key="u/l.png",
        ),
        inputs=(
            ProviderInput(name="first_frame", url="https://s/f"),
            ProviderInput(name="last_frame", url="https://s/l"),
        ),
    )
    body = worker_input(video, name="runpod")
    assert body["kind"] == "video" and body["input_type"] == "keyframes"
    assert body["first_frame_url"] == "https://s/f" and "image_url" not in body


def test_the_worker_input_lists_every_named_input_in_order() -> None:
    edit = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="m",
        params=EditParams(prompt="x", image_key="u/a.png", mask_key="u/b.png", width=64, height=64),
        inputs=(
            ProviderInput(name="image", url="https://s/a"),
            ProviderInput(name="mask", url="https://s/b"),
        ),
    )
    assert worker_input(edit, name="modal")["inputs"] == [
        {"name": "image", "url": "https://s/a", "content_type": "image/png"},
        {"name": "mask", "url": "https://s/b", "content_type": "image/png"},
    ]
    # several inputs may share a name (a training job's photos): all go, in order
    photos = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="m",
        params=ImageParams(prompt="x"),
        inputs=tuple(
            ProviderInput(name="photo", url=f"https://s/{n}", content_type="image/jpeg")
            for n in range(12)
        ),
    )
    body = worker_input(photos, name="runpod")
    assert [(i["name"], i["url"]) for i in body["inputs"]] == [
        ("photo", f"https://s/{n}") for n in range(12)
    ]
    assert "photo_url" not in body
    text = GpuRequest(job_id=uuid.uuid4(), provider_model="m", params=ImageParams(prompt="x"))
    assert "inputs" not in worker_input(text, name="modal"), "as before: no empty list"


def test_an_upload_without_its_url_cannot_be_sent() -> None:
    request = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="m",
        params=EditParams(prompt="x", image_key="u/a.png", mask_key="u/b.png", width=64, height=64),
        inputs=(ProviderInput(name="image", url="https://s/a"),),
    )
    with pytest.raises(ProviderUnavailable, match="mask"):
        worker_input(request, name="modal")


def test_video_outputs_pair_each_video_with_its_poster() -> None:
    import base64 as b64

    mp4, png = b64.b64encode(b"mp4").decode(), b64.b64encode(b"png").decode()
    outputs = decode_outputs(
        {
            "videos": [{"base64": mp4, "content_type": "video/mp4"}],
            "posters": [{"base64": png, "content_type": "image/png"}],
        }
    )
    assert not isinstance(outputs, JobError)
    assert [(o.role.value, o.content_type) for o in outputs] == [
        ("result", "video/mp4"),
        ("poster", "image/png"),
    ]
    assert isinstance(decode_outputs({"videos": [{"base64": mp4}], "posters": []}), JobError)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds("-3") == 0.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=7)), now) == 7.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_backoff_grows_with_jitter_and_never_undercuts_retry_after() -> None:
    backoff = Backoff(base=1.0, cap=8.0)
    rng = random.Random(1)
    for attempt, ceiling in enumerate([1, 2, 4, 8, 8]):
        delay = backoff.delay(attempt, None, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.delay(0, 5.0, rng) == 5.0


async def test_a_token_bucket_spaces_calls_beyond_its_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await bucket.acquire()

    assert now[0] == pytest.approx(1.5)  # two free, then one every half second
    with pytest.raises(ValueError):
        TokenBucket(0)
