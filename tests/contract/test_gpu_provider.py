"""The GpuProvider contract (genstudio.testing.contracts.gpu, the suite outside
adapters run too) over every in-process adapter and the testing kit's scripted GPU;
then what only the local one does."""

from __future__ import annotations

import asyncio

import pytest

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.core.model.jobs import FailureReason
from genstudio.ports.gpu import Cancelled, Completed, Failed, Pending
from genstudio.testing.contracts.gpu import (
    GpuFactory,
    GpuProviderContract,
    image_request,
    settle,
)
from genstudio.testing.gpu import ScriptedGpu

__all__ = ["image_request", "settle"]  # the helpers, for the other GPU contract modules


async def wait_idle(gpu: LocalGpuProvider) -> None:
    """Wait until nothing runs or waits (health, unlike poll, delivers no result)."""
    for _ in range(2000):
        health = await gpu.health()
        if not (health.running or health.queued):
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the provider is still busy")


# -- the contract -----------------------------------------------------------------------


class TestMemoryGpuProvider(GpuProviderContract):
    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return lambda: InMemoryGpuProvider(steps=1)


class TestLocalGpuProvider(GpuProviderContract):
    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return LocalGpuProvider


class TestScriptedGpu(GpuProviderContract):
    """The testing kit's GPU keeps the contract too (while it is told to succeed)."""

    @pytest.fixture
    def gpu_factory(self) -> GpuFactory:
        return lambda: ScriptedGpu().succeeds(progress=(10, 60), times=None)


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
