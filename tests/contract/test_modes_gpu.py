"""The GpuProvider contract for edits and videos (genstudio.testing.contracts.gpu's
EditAndVideoContract, the suite outside adapters run too) over every in-process
adapter and the testing kit's scripted GPU; then what only the local renderer does.

An edit completes with one PNG of the input's size; a video with one MP4 of the asked
duration and frame size and one PNG poster (role poster). The local renderer reads
its inputs inline (``inline_inputs``); the memory provider needs none.
"""

from __future__ import annotations

import asyncio
import io
import uuid

import av
import pytest
from PIL import Image

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.core.model.job_params import VideoInput
from genstudio.core.model.jobs import FailureReason
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    Pending,
    ProviderStatus,
)
from genstudio.testing.contracts import gpu as contract
from genstudio.testing.contracts.gpu import (
    MASK,
    PICTURE,
    EditAndVideoContract,
    GpuFactory,
    edit_request,
    video_request,
)
from genstudio.testing.gpu import ScriptedGpu

MASK_IMAGE = Image.open(io.BytesIO(MASK))


async def settle(gpu: GpuProvider, provider_job_id: str) -> ProviderStatus:
    status, _ = await contract.settle(gpu, provider_job_id)
    return status


class TestMemoryGpuEditsAndVideos(EditAndVideoContract):
    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return lambda: InMemoryGpuProvider(steps=1)


class TestLocalGpuEditsAndVideos(EditAndVideoContract):
    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return LocalGpuProvider


class TestScriptedGpuEditsAndVideos(EditAndVideoContract):
    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return ScriptedGpu


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
