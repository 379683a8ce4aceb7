"""The GpuProvider contract for edits and videos, over every in-process adapter.

An edit completes with one PNG of the input's size; a video with one MP4 of the asked
duration and frame size and one PNG poster (role poster). The local renderer reads
its inputs inline (``inline_inputs``); the memory provider needs none.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator

import av
import pytest
from PIL import Image, ImageDraw

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.core.model.job_params import EditParams, JobParams, VideoInput, VideoParams
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import mp4_info, png_dimensions, sniff_content_type
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    OutputRole,
    Pending,
    ProviderInput,
    ProviderStatus,
)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PICTURE = png(Image.new("RGB", (96, 64), (30, 120, 200)))
MASK_IMAGE = Image.new("L", (96, 64), 0)
ImageDraw.Draw(MASK_IMAGE).rectangle((20, 10, 59, 39), fill=255)
MASK = png(MASK_IMAGE)


def request(params: JobParams, data: dict[str, bytes]) -> GpuRequest:
    return GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=params,
        inputs=tuple(
            ProviderInput(name=name, url=f"https://storage.invalid/{name}.png", data=png)
            for name, png in data.items()
        ),
    )


def edit_request() -> GpuRequest:
    params = EditParams(
        prompt="a paper boat", image_key="u/i.png", mask_key="u/m.png", width=96, height=64, seed=2
    )
    return request(params, {"image": PICTURE, "mask": MASK})


def video_request(input_type: VideoInput = VideoInput.TEXT, seconds: int = 1) -> GpuRequest:
    keys: dict[str, str] = {
        VideoInput.TEXT: {},
        VideoInput.IMAGE: {"image_key": "u/i.png"},
        VideoInput.KEYFRAMES: {"first_frame_key": "u/a.png", "last_frame_key": "u/b.png"},
    }[input_type]
    params = VideoParams(
        prompt="a kite",
        input_type=input_type,
        duration_seconds=seconds,
        fps=8,
        image_key=keys.get("image_key"),
        first_frame_key=keys.get("first_frame_key"),
        last_frame_key=keys.get("last_frame_key"),
    )
    data = {name.removesuffix("_key"): PICTURE for name in keys}
    return request(params, data)


async def settle(gpu: GpuProvider, provider_job_id: str) -> ProviderStatus:
    for _ in range(3000):
        status = await gpu.poll(provider_job_id)
        if not isinstance(status, Pending):
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("the job never finished")


@pytest.fixture(params=["memory", "local"])
async def gpu(request: pytest.FixtureRequest) -> AsyncIterator[GpuProvider]:
    if request.param == "memory":
        yield InMemoryGpuProvider(steps=1)
        return
    local = LocalGpuProvider()
    yield local
    await local.aclose()


async def test_an_edit_completes_with_one_png_of_the_inputs_size(gpu: GpuProvider) -> None:
    status = await settle(gpu, await gpu.submit(edit_request()))

    assert isinstance(status, Completed)
    [output] = status.outputs
    assert output.role is OutputRole.RESULT and output.content_type == "image/png"
    assert png_dimensions(await gpu.fetch(output)) == (96, 64)


@pytest.mark.parametrize("input_type", list(VideoInput))
async def test_a_video_completes_with_an_mp4_of_the_asked_duration_and_a_poster(
    gpu: GpuProvider, input_type: VideoInput
) -> None:
    status = await settle(gpu, await gpu.submit(video_request(input_type, seconds=2)))

    assert isinstance(status, Completed)
    videos = [o for o in status.outputs if o.role is OutputRole.RESULT]
    posters = [o for o in status.outputs if o.role is OutputRole.POSTER]
    assert len(videos) == len(posters) == 1
    assert videos[0].content_type == "video/mp4" and posters[0].content_type == "image/png"
    mp4 = await gpu.fetch(videos[0])
    assert sniff_content_type(mp4) == "video/mp4"
    info = mp4_info(mp4)
    assert info is not None
    assert (info.duration_seconds, info.width, info.height, info.frames) == (2.0, 854, 480, 16)
    assert png_dimensions(await gpu.fetch(posters[0])) is not None


# -- the local renderer only ----------------------------------------------------------------


async def test_local_edit_changes_only_the_masked_pixels() -> None:
    gpu = LocalGpuProvider()
    status = await settle(gpu, await gpu.submit(edit_request()))
    assert isinstance(status, Completed)
    result = Image.open(io.BytesIO(status.outputs[0].data or b"")).convert("RGB")
    original = Image.open(io.BytesIO(PICTURE)).convert("RGB")
    outside = MASK_IMAGE.point(lambda v: 255 - v)
    assert Image.composite(result, original, outside).tobytes() == original.tobytes()
    assert result.crop((20, 10, 60, 40)).tobytes() != original.crop((20, 10, 60, 40)).tobytes()


async def test_local_video_is_real_h264_that_ffmpeg_decodes_frame_by_frame() -> None:
    gpu = LocalGpuProvider()
    status = await settle(gpu, await gpu.submit(video_request(VideoInput.IMAGE, seconds=2)))
    assert isinstance(status, Completed)
    with av.open(io.BytesIO(status.outputs[0].data or b""), "r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264" and stream.average_rate == 8
    assert len(frames) == 16 and (frames[0].width, frames[0].height) == (854, 480)


async def test_local_fails_a_job_whose_inputs_are_not_inline() -> None:
    gpu = LocalGpuProvider()
    assert gpu.inline_inputs
    without = GpuRequest(
        job_id=uuid.uuid4(), provider_model="preview", params=edit_request().params, inputs=()
    )
    status = await settle(gpu, await gpu.submit(without))
    assert isinstance(status, Failed) and status.error.reason is FailureReason.INFRASTRUCTURE
    assert "image, mask" in status.error.message


async def test_local_video_progress_counts_frames_and_cancel_stops_it() -> None:
    gpu = LocalGpuProvider()
    provider_job_id = await gpu.submit(video_request(VideoInput.TEXT, seconds=10))
    seen: list[int] = []
    async with asyncio.timeout(30):
        while not seen or seen[-1] == 0:
            status = await gpu.poll(provider_job_id)
            assert isinstance(status, Pending)
            seen.append(status.progress)
            await asyncio.sleep(0.01)
    await gpu.cancel(provider_job_id)
    assert 0 < seen[-1] < 100
    assert isinstance(await gpu.poll(provider_job_id), Cancelled)
    for _ in range(1000):  # the render thread stops at its next frame
        if not (await gpu.health()).running:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the render did not stop")
