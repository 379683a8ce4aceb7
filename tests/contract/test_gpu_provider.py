"""The GpuProvider contract, over every in-process adapter; then what only the local one does."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import PNG_SIGNATURE, png_dimensions
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    Pending,
    ProviderOutput,
    ProviderStatus,
    ProviderUnavailable,
)


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


async def settle(gpu: GpuProvider, provider_job_id: str) -> tuple[ProviderStatus, list[Pending]]:
    """Poll until the job leaves Pending; return the outcome and the Pendings seen."""
    pendings: list[Pending] = []
    async with asyncio.timeout(10):
        while isinstance(status := await gpu.poll(provider_job_id), Pending):
            pendings.append(status)
            await asyncio.sleep(0.005)
    return status, pendings


async def wait_idle(gpu: LocalGpuProvider) -> None:
    """Wait until nothing runs or waits (health, unlike poll, delivers no result)."""
    for _ in range(2000):
        health = await gpu.health()
        if not (health.running or health.queued):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the provider is still busy")


@pytest.fixture(params=["memory", "local"])
async def gpu(request: pytest.FixtureRequest) -> AsyncIterator[GpuProvider]:
    if request.param == "memory":
        yield InMemoryGpuProvider(steps=1)
        return
    local = LocalGpuProvider()
    yield local
    await local.aclose()


# -- the contract -----------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height", "count"), [(64, 64, 1), (128, 72, 3)])
async def test_a_submitted_job_completes_with_count_pngs_of_the_requested_size(
    gpu: GpuProvider, width: int, height: int, count: int
) -> None:
    provider_job_id = await gpu.submit(image_request(width=width, height=height, count=count))

    status, pendings = await settle(gpu, provider_job_id)

    assert isinstance(status, Completed)
    assert len(status.outputs) == count
    for output in status.outputs:
        assert output.content_type == "image/png"
        data = await gpu.fetch(output)
        assert data.startswith(PNG_SIGNATURE)
        assert png_dimensions(data) == (width, height)
    progress = [p.progress for p in pendings]
    assert progress == sorted(progress)
    assert all(0 <= p <= 100 for p in progress)


async def test_provider_job_ids_are_distinct_and_carry_the_provider_name(gpu: GpuProvider) -> None:
    ids = {await gpu.submit(image_request()) for _ in range(3)}
    assert len(ids) == 3
    assert all(i.startswith(f"{gpu.name}-") for i in ids)
    for provider_job_id in ids:
        await settle(gpu, provider_job_id)


async def test_a_cancelled_job_polls_as_cancelled(gpu: GpuProvider) -> None:
    provider_job_id = await gpu.submit(image_request(count=2))

    await gpu.cancel(provider_job_id)

    assert isinstance(await gpu.poll(provider_job_id), Cancelled)


async def test_cancelling_an_unknown_or_finished_job_is_not_an_error(gpu: GpuProvider) -> None:
    await gpu.cancel("no-such-job")
    provider_job_id = await gpu.submit(image_request())
    await settle(gpu, provider_job_id)
    await gpu.cancel(provider_job_id)


async def test_polling_an_unknown_job_is_an_infrastructure_failure(gpu: GpuProvider) -> None:
    status = await gpu.poll(f"{gpu.name}-{uuid.uuid4()}")

    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.INFRASTRUCTURE


async def test_fetch_returns_inline_bytes_and_refuses_an_output_without_any(
    gpu: GpuProvider,
) -> None:
    assert await gpu.fetch(ProviderOutput(content_type="image/png", data=b"abc")) == b"abc"
    with pytest.raises(ProviderUnavailable):
        await gpu.fetch(ProviderOutput(content_type="image/png"))


async def test_a_working_provider_reports_itself_healthy(gpu: GpuProvider) -> None:
    health = await gpu.health()
    assert health.healthy
    assert health.queued >= 0
    assert health.running >= 0


# -- the local renderer only --------------------------------------------------------------


async def test_local_images_of_one_request_differ_and_a_seeded_request_repeats() -> None:
    gpu = LocalGpuProvider()
    first, _ = await settle(gpu, await gpu.submit(image_request(count=2, seed=11)))
    again, _ = await settle(gpu, await gpu.submit(image_request(count=2, seed=11)))

    assert isinstance(first, Completed)
    assert isinstance(again, Completed)
    a, b = (o.data for o in first.outputs)
    assert a != b
    assert [o.data for o in again.outputs] == [a, b]


async def test_local_progress_advances_across_the_images_of_a_request() -> None:
    gpu = LocalGpuProvider(min_seconds=0.3)
    provider_job_id = await gpu.submit(image_request(count=3))

    status, pendings = await settle(gpu, provider_job_id)

    assert isinstance(status, Completed)
    started = [p for p in pendings if p.started]
    assert started, "a running job reports started=True"
    progress = [p.progress for p in started]
    assert progress == sorted(progress)
    assert progress[-1] > progress[0]
    assert all(p < 100 for p in progress)


async def test_local_health_counts_running_and_queued_jobs() -> None:
    gpu = LocalGpuProvider(min_seconds=0.5, max_concurrent=1)
    ids = [await gpu.submit(image_request()) for _ in range(3)]
    await asyncio.sleep(0.05)

    health = await gpu.health()

    assert (health.running, health.queued) == (1, 2)
    first = await gpu.poll(ids[0])
    last = await gpu.poll(ids[2])
    assert isinstance(first, Pending)
    assert first.started
    assert isinstance(last, Pending)
    assert not last.started
    await gpu.aclose()
    after = await gpu.health()
    assert (after.running, after.queued) == (0, 0)


async def test_local_cancel_stops_a_running_job_for_good() -> None:
    gpu = LocalGpuProvider(min_seconds=0.3)
    provider_job_id = await gpu.submit(image_request(count=3))
    await asyncio.sleep(0.05)

    await gpu.cancel(provider_job_id)
    await asyncio.sleep(0.4)

    assert isinstance(await gpu.poll(provider_job_id), Cancelled)
    assert (await gpu.health()).running == 0


async def test_local_results_can_be_polled_again_until_they_expire() -> None:
    gpu = LocalGpuProvider(delivered_seconds=0.0, retain_seconds=60.0)
    provider_job_id = await gpu.submit(image_request())
    await wait_idle(gpu)

    first = await gpu.poll(provider_job_id)  # finished, not yet delivered: kept
    second = await gpu.poll(provider_job_id)  # delivered, with no grace: gone

    assert isinstance(first, Completed)
    assert isinstance(second, Failed)
    assert second.error.reason is FailureReason.INFRASTRUCTURE


async def test_local_keeps_at_most_max_retained_finished_jobs_dropping_the_oldest() -> None:
    gpu = LocalGpuProvider(max_retained=2)
    ids = []
    for _ in range(3):
        ids.append(await gpu.submit(image_request()))
        await settle(gpu, ids[-1])

    oldest = await gpu.poll(ids[0])

    assert isinstance(oldest, Failed)
    for provider_job_id in ids[1:]:
        assert isinstance(await gpu.poll(provider_job_id), Completed)


async def test_local_a_restarted_process_knows_no_earlier_job() -> None:
    before = LocalGpuProvider()
    provider_job_id = await before.submit(image_request())
    await settle(before, provider_job_id)

    after = LocalGpuProvider()

    status = await after.poll(provider_job_id)
    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.INFRASTRUCTURE
    assert status.error.message == "unknown job"
