"""FalProvider against the package's stand-in of fal's queue API on loopback, spoken to
over HTTP. genstudio's exported ``GpuProviderContract`` runs over it first: the checks
genstudio's own providers pass."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from genstudio.adapters.gpu_http import Backoff
from genstudio.core.model.job_params import EditParams, ImageParams
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import PNG_SIGNATURE, png_dimensions
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuRequest,
    Pending,
    ProviderUnavailable,
)
from genstudio.testing.contracts.gpu import GpuFactory, GpuProviderContract, image_request, settle
from genstudio.testing.standins.loopback import Fail, RateLimit, Stall

from genstudio_fal import FalProvider
from genstudio_fal.standin import FalStandin


@pytest.fixture
def fal() -> Iterator[FalStandin]:
    with FalStandin() as standin:
        # long enough that a cancel sent right after submitting finds the request running
        standin.knobs.run_seconds = 0.3
        yield standin


def provider_for(fal: FalStandin, **options: object) -> FalProvider:
    return FalProvider(key=fal.key, queue_url=fal.url, **options)  # type: ignore[arg-type]


class TestFalContract(GpuProviderContract):
    @pytest.fixture
    def gpu_factory(self, fal: FalStandin) -> GpuFactory:
        return lambda: provider_for(fal, timeout=5.0)


@pytest.fixture
async def gpu(fal: FalStandin) -> AsyncIterator[FalProvider]:
    provider = provider_for(fal, timeout=2.0, backoff=Backoff(base=0.01, cap=0.05))
    yield provider
    await provider.aclose()


async def finish(gpu: FalProvider, request: GpuRequest | None = None) -> tuple[str, object]:
    provider_job_id = await gpu.submit(request or image_request())
    status, _ = await settle(gpu, provider_job_id, seconds=10)
    return provider_job_id, status


# -- what is sent ---------------------------------------------------------------------------


async def test_a_job_is_submitted_to_its_model_with_flux_s_input_and_the_key(
    fal: FalStandin, gpu: FalProvider
) -> None:
    request = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=ImageParams(prompt="a red kite", width=128, height=72, count=2, seed=9),
    )

    provider_job_id = await gpu.submit(request)

    [(endpoint, body)] = fal.submitted
    assert endpoint == "fal-ai/flux/schnell"  # the default model, with its path
    assert body == {
        "prompt": "a red kite",
        "image_size": {"width": 128, "height": 72},
        "num_images": 2,
        "seed": 9,
        "output_format": "png",
        "enable_safety_checker": True,
    }
    [submit] = [r for r in fal.requests if r.method == "POST"]
    assert submit.headers["authorization"] == f"Key {fal.key}"
    # status, result and cancel go to owner/app only: the path is the submission's
    assert provider_job_id.startswith("fal-fal-ai/flux/")
    status, _ = await settle(gpu, provider_job_id)
    assert isinstance(status, Completed)
    paths = {r.path for r in fal.requests if r.method == "GET" and "/requests/" in r.path}
    request_id = provider_job_id.rpartition("/")[2]
    assert paths == {
        f"/fal-ai/flux/requests/{request_id}/status",
        f"/fal-ai/flux/requests/{request_id}",
    }
    # outputs come from the CDN without the key
    for output in status.outputs:
        await gpu.fetch(output)
    files = [r for r in fal.requests if r.path.startswith("/files/")]
    assert len(files) == 2 and all("authorization" not in r.headers for r in files)


async def test_catalog_models_go_to_the_fal_models_mapped_to_them(fal: FalStandin) -> None:
    gpu = provider_for(
        fal,
        models={
            "stabilityai/stable-diffusion-xl-base-1.0": "fal-ai/fast-sdxl",
            "*": "fal-ai/flux/dev",
        },
    )
    try:
        params = ImageParams(prompt="p", width=64, height=64, negative_prompt="blur")
        for model in (
            "stabilityai/stable-diffusion-xl-base-1.0",
            "black-forest-labs/FLUX.1-schnell",
        ):
            await gpu.submit(GpuRequest(job_id=uuid.uuid4(), provider_model=model, params=params))
        assert [e for e, _ in fal.submitted] == ["fal-ai/fast-sdxl", "fal-ai/flux/dev"]
        assert fal.submitted[0][1]["negative_prompt"] == "blur"
    finally:
        await gpu.aclose()


async def test_jobs_it_does_not_render_are_refused_so_another_provider_takes_them(
    fal: FalStandin, gpu: FalProvider
) -> None:
    edit = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=EditParams(prompt="p", image_key="u/i.png", mask_key="u/m.png", width=64, height=64),
    )
    with pytest.raises(ProviderUnavailable, match="text-to-image jobs only, not EditParams"):
        await gpu.submit(edit)
    lora = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=ImageParams(prompt="p", lora_id=uuid.uuid4(), lora_key="u/l.safetensors"),
    )
    with pytest.raises(ProviderUnavailable, match="LoRA"):
        await gpu.submit(lora)
    only_sdxl = provider_for(fal, models={"sdxl-model": "fal-ai/fast-sdxl"})
    try:
        with pytest.raises(ProviderUnavailable, match="no fal model serves 'preview'"):
            await only_sdxl.submit(image_request())
    finally:
        await only_sdxl.aclose()
    assert fal.submitted == []


# -- what comes back ------------------------------------------------------------------------


async def test_progress_reads_queued_then_started(fal: FalStandin, gpu: FalProvider) -> None:
    fal.knobs.queue_seconds, fal.knobs.run_seconds = 0.3, 0.3
    provider_job_id = await gpu.submit(image_request())

    status, pendings = await settle(gpu, provider_job_id)

    assert isinstance(status, Completed)
    assert pendings[0] == Pending(progress=0, started=False)
    assert pendings[-1] == Pending(progress=0, started=True)
    health = await gpu.health()
    assert (health.queued, health.running) == (0, 0)


async def test_outputs_sent_inline_as_data_uris_are_read_without_a_download(
    fal: FalStandin, gpu: FalProvider
) -> None:
    fal.knobs.sync_mode = True
    _, status = await finish(gpu, image_request(width=96, height=64))
    assert isinstance(status, Completed)
    [output] = status.outputs
    assert output.url is None and output.data is not None
    data = await gpu.fetch(output)
    assert data.startswith(PNG_SIGNATURE) and png_dimensions(data) == (96, 64)


@pytest.mark.parametrize(
    ("knob", "reason", "message"),
    [
        ("content", FailureReason.CONTENT, "content_policy_violation at body.prompt"),
        ("validation", FailureReason.CONTENT, "value_error at body.image_size"),
        ("runner", FailureReason.INFRASTRUCTURE, "HTTP 503 (runner_disconnected)"),
        ("timeout", FailureReason.TIMEOUT, "HTTP 504 (request_timeout)"),
    ],
)
async def test_fal_s_errors_become_failures_of_their_kind(
    fal: FalStandin, gpu: FalProvider, knob: str, reason: FailureReason, message: str
) -> None:
    fal.knobs.fail_with = knob  # type: ignore[assignment]
    _, status = await finish(gpu)
    assert isinstance(status, Failed), status
    assert status.error.reason is reason
    assert message in status.error.message


async def test_outputs_the_safety_checker_flags_are_a_content_failure(
    fal: FalStandin, gpu: FalProvider
) -> None:
    fal.knobs.nsfw = True
    _, status = await finish(gpu, image_request(count=2))
    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.CONTENT
    assert "flagged 2 of the images" in status.error.message


async def test_a_job_cancelled_while_queued_reads_cancelled_and_its_cancel_is_recorded(
    fal: FalStandin, gpu: FalProvider
) -> None:
    fal.knobs.queue_seconds = 5
    provider_job_id = await gpu.submit(image_request())
    await gpu.cancel(provider_job_id)
    assert isinstance(await gpu.poll(provider_job_id), Cancelled)
    assert fal.cancelled == [provider_job_id.rpartition("/")[2]]
    await gpu.cancel(provider_job_id)  # ALREADY_COMPLETED: fine


async def test_another_worker_polls_a_job_by_its_id_alone(fal: FalStandin) -> None:
    first, second = provider_for(fal), provider_for(fal)
    try:
        provider_job_id = await first.submit(image_request(width=64, height=64))
        status, _ = await settle(second, provider_job_id)
        assert isinstance(status, Completed)
        assert png_dimensions(await second.fetch(status.outputs[0])) == (64, 64)
    finally:
        await first.aclose()
        await second.aclose()


# -- failing service ------------------------------------------------------------------------


async def test_a_wrong_key_is_provider_unavailable_naming_fal_key(fal: FalStandin) -> None:
    gpu = FalProvider(key="not-the-key", queue_url=fal.url)
    try:
        with pytest.raises(ProviderUnavailable, match="refused \\(HTTP 401\\): check FAL_KEY"):
            await gpu.submit(image_request())
        health = await gpu.health()
        assert not health.healthy and "FAL_KEY" in health.detail
    finally:
        await gpu.aclose()


async def test_429s_are_retried_after_their_retry_after(fal: FalStandin, gpu: FalProvider) -> None:
    fal.inject(RateLimit(retry_after=0.05), times=2)
    _, status = await finish(gpu)
    assert isinstance(status, Completed)
    assert [r.method for r in fal.requests[:3]] == ["POST"] * 3


async def test_5xx_and_stalls_are_provider_unavailable_and_the_job_is_still_there_after(
    fal: FalStandin, gpu: FalProvider
) -> None:
    provider_job_id = await gpu.submit(image_request())
    fal.inject(Fail(502, "Bad Gateway"), times=1)
    with pytest.raises(ProviderUnavailable, match="HTTP 502"):
        await gpu.poll(provider_job_id)
    fal.inject(Stall(3.0), times=1)
    with pytest.raises(ProviderUnavailable, match="timed out after 2s"):
        await gpu.poll(provider_job_id)
    assert (await gpu.health()).healthy  # it answers again
    status, _ = await settle(gpu, provider_job_id)
    assert isinstance(status, Completed)


async def test_an_ingress_5xx_on_the_result_is_asked_again_not_a_failure(
    fal: FalStandin, gpu: FalProvider
) -> None:
    provider_job_id = await gpu.submit(image_request())
    await asyncio.sleep(0.4)  # completed
    fal.inject(
        Fail(502, "<html>nginx</html>"), times=1, when=lambda r: not r.path.endswith("/status")
    )
    with pytest.raises(ProviderUnavailable, match="HTTP 502"):
        await gpu.poll(provider_job_id)
    assert isinstance(await gpu.poll(provider_job_id), Completed)


async def test_nothing_listening_is_provider_unavailable_and_unhealthy() -> None:
    with FalStandin() as gone:
        url = gone.url
    gpu = FalProvider(key="k", queue_url=url, timeout=1.0)
    try:
        with pytest.raises(ProviderUnavailable, match="submit failed: ConnectError"):
            await gpu.submit(image_request())
        assert not (await gpu.health()).healthy
    finally:
        await gpu.aclose()


async def test_an_unknown_request_of_a_known_app_is_an_infrastructure_failure(
    gpu: FalProvider,
) -> None:
    status = await gpu.poll(f"fal-fal-ai/flux/{uuid.uuid4()}")
    assert isinstance(status, Failed) and status.error.reason is FailureReason.INFRASTRUCTURE
    async with httpx.AsyncClient() as http:  # and the stand-in said so over HTTP
        assert (await http.get(gpu.queue_url + "/nothing")).status_code == 401
