"""The ``GpuProvider`` contract (``genstudio.ports.gpu``), for any provider's adapter.

``GpuProviderContract`` checks text-to-image jobs (what every provider runs);
``EditAndVideoContract`` adds edits and videos, for a provider that renders them.
Subclass and override ``gpu_factory``: a fixture returning a function that makes a
ready provider (pointed at your stand-in or sandbox). The provider is closed after
each check if it has an ``aclose``::

    class TestMyGpu(GpuProviderContract):
        @pytest.fixture
        def gpu_factory(self, my_standin):
            return lambda: MyGpuProvider(base_url=my_standin.url, api_key="test")

The provider renders small images here (64x64 to 128x72 PNGs): a stand-in must send
PNGs of the requested size, inline (``data``) or by URL (fetched with ``fetch``).
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from PIL import Image, ImageDraw

from genstudio.core.model.job_params import (
    EditParams,
    ImageParams,
    JobParams,
    VideoInput,
    VideoParams,
)
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import (
    PNG_SIGNATURE,
    mp4_info,
    png_dimensions,
    sniff_content_type,
)
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    OutputRole,
    Pending,
    ProviderInput,
    ProviderOutput,
    ProviderStatus,
    ProviderUnavailable,
)

GpuFactory = Callable[[], GpuProvider | Awaitable[GpuProvider]]

#: how long a check waits for a job to leave Pending
SETTLE_SECONDS = 30.0


def image_request(
    prompt: str = "a lighthouse on a cliff",
    *,
    width: int = 64,
    height: int = 64,
    count: int = 1,
    seed: int | None = 7,
) -> GpuRequest:
    return GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=ImageParams(prompt=prompt, width=width, height=height, count=count, seed=seed),
    )


async def settle(
    gpu: GpuProvider, provider_job_id: str, *, seconds: float = SETTLE_SECONDS
) -> tuple[ProviderStatus, list[Pending]]:
    """Poll until the job leaves Pending; return the outcome and the Pendings seen."""
    pendings: list[Pending] = []
    async with asyncio.timeout(seconds):
        while isinstance(status := await gpu.poll(provider_job_id), Pending):
            pendings.append(status)
            await asyncio.sleep(0.005)
    return status, pendings


class GpuContractBase:
    """The factory fixture and the provider each check gets."""

    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        """Override: a function making the provider under test."""
        pytest.fail(f"{type(self).__name__} must override the gpu_factory fixture")

    @pytest_asyncio.fixture
    async def gpu(self, gpu_factory: GpuFactory) -> AsyncIterator[GpuProvider]:
        made = gpu_factory()
        provider = await made if isinstance(made, Awaitable) else made
        yield provider
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


@pytest.mark.asyncio
class GpuProviderContract(GpuContractBase):
    """What genstudio's worker relies on from every GPU provider."""

    @pytest.mark.parametrize(("width", "height", "count"), [(64, 64, 1), (128, 72, 3)])
    async def test_a_submitted_job_completes_with_count_pngs_of_the_requested_size(
        self, gpu: GpuProvider, width: int, height: int, count: int
    ) -> None:
        provider_job_id = await gpu.submit(image_request(width=width, height=height, count=count))

        status, pendings = await settle(gpu, provider_job_id)

        assert isinstance(status, Completed), status
        assert len(status.outputs) == count
        for output in status.outputs:
            assert output.content_type == "image/png"
            data = await gpu.fetch(output)
            assert data.startswith(PNG_SIGNATURE)
            assert png_dimensions(data) == (width, height)
        progress = [p.progress for p in pendings]
        assert progress == sorted(progress), "progress never goes back"
        assert all(0 <= p <= 100 for p in progress)

    async def test_provider_job_ids_are_distinct_and_carry_the_provider_name(
        self, gpu: GpuProvider
    ) -> None:
        ids = {await gpu.submit(image_request()) for _ in range(3)}
        assert len(ids) == 3
        assert all(i.startswith(f"{gpu.name}-") for i in ids)
        for provider_job_id in ids:
            await settle(gpu, provider_job_id)

    async def test_a_cancelled_job_polls_as_cancelled(self, gpu: GpuProvider) -> None:
        provider_job_id = await gpu.submit(image_request(count=2))

        await gpu.cancel(provider_job_id)

        assert isinstance(await gpu.poll(provider_job_id), Cancelled)

    async def test_cancelling_an_unknown_or_finished_job_is_not_an_error(
        self, gpu: GpuProvider
    ) -> None:
        await gpu.cancel("no-such-job")
        provider_job_id = await gpu.submit(image_request())
        await settle(gpu, provider_job_id)
        await gpu.cancel(provider_job_id)

    async def test_polling_an_unknown_job_is_an_infrastructure_failure(
        self, gpu: GpuProvider
    ) -> None:
        status = await gpu.poll(f"{gpu.name}-{uuid.uuid4()}")

        assert isinstance(status, Failed)
        assert status.error.reason is FailureReason.INFRASTRUCTURE

    async def test_fetch_returns_inline_bytes_and_refuses_an_output_without_any(
        self, gpu: GpuProvider
    ) -> None:
        assert await gpu.fetch(ProviderOutput(content_type="image/png", data=b"abc")) == b"abc"
        with pytest.raises(ProviderUnavailable):
            await gpu.fetch(ProviderOutput(content_type="image/png"))

    async def test_a_working_provider_reports_itself_healthy(self, gpu: GpuProvider) -> None:
        health = await gpu.health()
        assert health.healthy
        assert health.queued >= 0
        assert health.running >= 0

    async def test_it_declares_whether_its_jobs_outlive_the_process_and_how_it_reads_inputs(
        self, gpu: GpuProvider
    ) -> None:
        assert isinstance(gpu.name, str) and gpu.name
        assert isinstance(gpu.durable, bool)
        assert isinstance(gpu.inline_inputs, bool)


# -- edits and videos ----------------------------------------------------------------------


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PICTURE = _png(Image.new("RGB", (96, 64), (30, 120, 200)))
_MASK_IMAGE = Image.new("L", (96, 64), 0)
ImageDraw.Draw(_MASK_IMAGE).rectangle((20, 10, 59, 39), fill=255)
MASK = _png(_MASK_IMAGE)


def request_with_inputs(params: JobParams, data: dict[str, bytes]) -> GpuRequest:
    """A request carrying its inputs both ways: a URL (what a remote provider gets)
    and the bytes inline (what a provider with ``inline_inputs`` reads)."""
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
    return request_with_inputs(params, {"image": PICTURE, "mask": MASK})


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
    return request_with_inputs(params, {name.removesuffix("_key"): PICTURE for name in keys})


@pytest.mark.asyncio
class EditAndVideoContract(GpuContractBase):
    """For a provider that edits images and renders videos."""

    async def test_an_edit_completes_with_one_png_of_the_inputs_size(
        self, gpu: GpuProvider
    ) -> None:
        status, _ = await settle(gpu, await gpu.submit(edit_request()))

        assert isinstance(status, Completed), status
        [output] = status.outputs
        assert output.role is OutputRole.RESULT and output.content_type == "image/png"
        assert png_dimensions(await gpu.fetch(output)) == (96, 64)

    @pytest.mark.parametrize("input_type", list(VideoInput))
    async def test_a_video_completes_with_an_mp4_of_the_asked_duration_and_a_poster(
        self, gpu: GpuProvider, input_type: VideoInput
    ) -> None:
        status, _ = await settle(gpu, await gpu.submit(video_request(input_type, seconds=2)))

        assert isinstance(status, Completed), status
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
