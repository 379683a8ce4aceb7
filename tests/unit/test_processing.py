"""Running a job at a GPU provider (core/services/processing/) on memory adapters.

Every spec reaches the processor as a worker does: a wake-up for a kind
(``JobProcessor.process_next``, through ``Studio.deliver``)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import pytest

from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.adapters.memory.gpu import tiny_png
from genstudio.core.model.credits import EntryKind, HoldStatus
from genstudio.core.model.job_params import EditParams, ImageParams, JobParams, VideoParams
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.media import MediaKind, png_dimensions
from genstudio.core.model.pricing import DEFAULT_CATALOG, ModelKind
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.services.generation.jobs import cancel_job
from genstudio.core.services.processing.outputs import VideoOutputs
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.ports.gpu import (
    Cancelled,
    GpuRequest,
    ProviderOutput,
    ProviderStatus,
)
from tests.unit.support import POLICY, Studio

PARAMS = ImageParams(prompt="a lighthouse at dusk", width=512, height=768, count=3)
COST = DEFAULT_CATALOG.image_price("flux-schnell", 512, 768, 3)
CREDITS = 20


class YieldingGpu(InMemoryGpuProvider):
    """Every call gives the event loop a turn first, as a network round trip would."""

    async def submit(self, request: GpuRequest) -> str:
        await asyncio.sleep(0)
        return await super().submit(request)

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        await asyncio.sleep(0)
        return await super().poll(provider_job_id)

    async def fetch(self, output: ProviderOutput) -> bytes:
        await asyncio.sleep(0)
        return await super().fetch(output)


class HookedGpu(InMemoryGpuProvider):
    """Runs ``on_fetch`` before the first fetch and ``outputs`` instead of real ones."""

    def __init__(self, *, steps: int = 1) -> None:
        super().__init__(steps=steps)
        self.on_fetch: Callable[[], Awaitable[None]] | None = None
        self.outputs: list[bytes] | None = None
        self.fetched = 0

    async def fetch(self, output: ProviderOutput) -> bytes:
        if self.on_fetch is not None and self.fetched == 0:
            await self.on_fetch()
        self.fetched += 1
        if self.outputs is not None:
            return self.outputs[self.fetched - 1]
        return await super().fetch(output)


async def until(condition: Callable[[], Awaitable[bool]], *, turns: int = 10_000) -> None:
    """Give other tasks turns until ``condition`` holds."""
    for _ in range(turns):
        if await condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")


def running(studio: Studio, job_id: uuid.UUID) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await studio.job(job_id)).status is JobStatus.RUNNING

    return check


async def assert_released_once(studio: Studio, job: Job) -> None:
    assert (await studio.hold_of(job)).status is HoldStatus.RELEASED
    state = await studio.account(job.user_id)
    assert state.balance == CREDITS
    assert len(state.of_kind(EntryKind.RELEASE)) == 1
    assert state.of_kind(EntryKind.SETTLE) == []


async def assert_nothing_kept(studio: Studio, job: Job) -> None:
    assert studio.storage.objects == {}
    assert await studio.media_of(job.id) == []
    assert (await studio.job(job.id)).asset_ids == ()


@pytest.fixture
def studio() -> Studio:
    return Studio()


async def test_a_successful_job_stores_its_images_settles_its_hold_and_succeeds(
    studio: Studio,
) -> None:
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    done = await studio.deliver(job.id)

    assert done is not None and done == await studio.job(job.id)
    assert (done.status, done.progress, done.error) == (JobStatus.SUCCEEDED, 100, None)
    assert (done.provider, done.attempts) == (studio.gpu.name, 1)
    media = await studio.media_of(job.id)
    assert len(media) == len(done.asset_ids) == PARAMS.count
    assert {m.id for m in media} == set(done.asset_ids)
    assert len(studio.storage.objects) == PARAMS.count
    for asset in media:
        data, content_type = studio.storage.objects[asset.storage_key]
        assert content_type == asset.content_type == "image/png"
        assert png_dimensions(data) == (PARAMS.width, PARAMS.height) == (asset.width, asset.height)
        assert asset.byte_size == len(data)
        assert asset.storage_key.startswith(f"{user}/")
        assert (asset.user_id, asset.job_id, asset.kind) == (user, job.id, MediaKind.IMAGE)
        assert (asset.prompt, asset.model_id, asset.is_public) == (
            PARAMS.prompt,
            job.model_id,
            False,
        )
    assert (await studio.hold_of(job)).status is HoldStatus.SETTLED
    state = await studio.account(user)
    assert state.balance == CREDITS - COST
    assert len(state.of_kind(EntryKind.SETTLE)) == 1 and state.of_kind(EntryKind.RELEASE) == []
    [request] = studio.gpu.submitted
    assert (request.job_id, request.params) == (job.id, PARAMS)
    assert request.provider_model == DEFAULT_CATALOG.get(job.model_id, job.kind).provider_model


async def test_a_job_the_provider_refuses_for_its_content_fails_and_releases_its_hold(
    studio: Studio,
) -> None:
    studio.gpu.fail_with = JobError(FailureReason.CONTENT, "the prompt was refused")
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    done = await studio.deliver(job.id)
    assert done is not None and done.status is JobStatus.FAILED
    assert done.error == studio.gpu.fail_with
    await assert_released_once(studio, job)
    await assert_nothing_kept(studio, job)


async def test_a_job_waits_out_a_provider_outage_without_spending_its_attempts(
    studio: Studio,
) -> None:
    studio.gpu.down = True
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    first = await studio.deliver(job.id)
    assert first is not None and first.status is JobStatus.QUEUED
    assert first.attempts == 0, "the provider never took it: no attempt spent"
    assert first.next_attempt_at is not None and first.next_attempt_at > studio.clock.now()
    assert await studio.deliver(job.id) == first, "not before its time"

    waited = await studio.drive(job.id, rounds=12)  # the breaker opens; the job waits
    assert waited is not None and waited.status is JobStatus.QUEUED
    assert waited.dead_lettered_at is None and waited.attempts == 0
    assert studio.gpu.submitted == []
    assert (await studio.account(user)).balance == CREDITS - COST, "still held while waiting"

    studio.gpu.down = False
    studio.clock.advance(60)  # past the breaker's cool-down
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 1
    state = await studio.account(user)
    assert state.balance == CREDITS - COST and len(state.of_kind(EntryKind.SETTLE)) == 1


async def test_a_job_that_fails_once_at_the_provider_succeeds_on_its_retry(studio: Studio) -> None:
    studio.gpu.down = True
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    await studio.deliver(job.id)
    studio.gpu.down = False
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 1
    state = await studio.account(user)
    assert state.balance == CREDITS - COST
    assert len(state.of_kind(EntryKind.SETTLE)) == 1 and state.of_kind(EntryKind.RELEASE) == []


async def test_a_job_whose_provider_goes_down_while_polling_is_retried_when_it_returns(
    studio: Studio,
) -> None:
    studio.use_gpu(YieldingGpu(steps=1000))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = asyncio.create_task(studio.deliver(job.id))
    await until(running(studio, job.id))
    studio.gpu.down = True
    retrying = await task
    assert retrying is not None and retrying.status is JobStatus.QUEUED
    assert retrying.error is not None and retrying.error.reason is FailureReason.INFRASTRUCTURE
    assert retrying.attempts == 1, "the lost attempt counts"
    waiting = await studio.drive(job.id)
    assert waiting is not None and waiting.status is JobStatus.QUEUED, "waits while it is down"
    studio.gpu.down = False
    studio.gpu.steps = 1
    studio.clock.advance(60)
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 2
    state = await studio.account(user)
    assert state.balance == CREDITS - COST and len(state.of_kind(EntryKind.SETTLE)) == 1


async def test_a_job_the_provider_keeps_cancelling_is_dead_lettered_and_refunded(
    studio: Studio,
) -> None:
    class CancellingGpu(InMemoryGpuProvider):
        async def poll(self, provider_job_id: str) -> ProviderStatus:
            return Cancelled()

    studio.use_gpu(CancellingGpu())
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.FAILED and done.attempts == 3
    assert done.error is not None and done.error.reason is FailureReason.INFRASTRUCTURE
    await assert_released_once(studio, job)


async def test_a_job_with_no_result_before_the_timeout_is_cancelled_at_the_provider_and_retried(
    studio: Studio,
) -> None:
    studio.gpu.steps = 10_000
    studio.processor = studio.processor_for(studio.gpu, timeout=30.0)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    started = studio.clock.now()
    first = await studio.deliver(job.id)
    assert first is not None and first.status is JobStatus.QUEUED
    assert first.error is not None and first.error.reason is FailureReason.TIMEOUT
    assert (studio.clock.now() - started).total_seconds() >= 30.0
    assert len(studio.gpu.cancelled) == 1
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.FAILED and done.dead_lettered_at
    assert len(studio.gpu.cancelled) == 3, "every timed-out attempt is cancelled at the provider"
    await assert_released_once(studio, job)


async def test_cancelling_a_running_job_stops_the_provider_and_releases_its_hold_once(
    studio: Studio,
) -> None:
    studio.use_gpu(YieldingGpu(steps=1000))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = asyncio.create_task(studio.deliver(job.id))
    await until(running(studio, job.id))
    provider_job_id = (await studio.job(job.id)).provider_job_id
    assert provider_job_id is not None

    await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)
    done = await task

    assert done is not None and done.status is JobStatus.CANCELLED
    assert provider_job_id in studio.gpu.cancelled
    await assert_released_once(studio, job)
    await assert_nothing_kept(studio, job)


async def test_a_job_cancelled_while_its_outputs_are_stored_keeps_no_files(
    studio: Studio,
) -> None:
    gpu = HookedGpu()
    studio.use_gpu(gpu)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    async def user_cancels() -> None:
        await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)

    gpu.on_fetch = user_cancels
    done = await studio.deliver(job.id)

    assert gpu.fetched == PARAMS.count, "the outputs were fetched and stored before the check"
    assert done is not None and done.status is JobStatus.CANCELLED
    await assert_released_once(studio, job)
    await assert_nothing_kept(studio, job)


async def test_an_output_that_is_not_a_png_is_retried_and_keeps_no_files(
    studio: Studio,
) -> None:
    gpu = HookedGpu()
    bad = [tiny_png(512, 768), b"<html>502 Bad Gateway</html>", tiny_png(512, 768)]
    gpu.outputs = bad * 3
    studio.use_gpu(gpu)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    first = await studio.deliver(job.id)
    assert first is not None and first.status is JobStatus.QUEUED
    assert first.error is not None and first.error.reason is FailureReason.INFRASTRUCTURE
    assert studio.storage.objects == {}, "the good outputs of a bad batch are discarded"
    done = await studio.drive(job.id)
    assert done is not None and done.status is JobStatus.FAILED and done.dead_lettered_at
    await assert_released_once(studio, job)
    await assert_nothing_kept(studio, job)


async def test_processing_a_finished_job_again_changes_nothing(studio: Studio) -> None:
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    first = await studio.deliver(job.id)
    state = await studio.account(user)
    objects = dict(studio.storage.objects)

    again = await studio.deliver(job.id)

    assert again == first
    assert len(studio.gpu.submitted) == 1
    assert studio.storage.objects == objects
    assert len(await studio.media_of(job.id)) == PARAMS.count
    assert await studio.account(user) == state


async def test_a_redelivery_while_the_job_runs_resumes_it_without_submitting_again(
    studio: Studio,
) -> None:
    studio.use_gpu(YieldingGpu(steps=20))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    first = asyncio.create_task(studio.deliver(job.id))
    await until(running(studio, job.id))
    second = await studio.deliver(job.id)
    assert second is not None and second.status is JobStatus.RUNNING, "left to its live owner"
    done = await first

    assert len(studio.gpu.submitted) == 1
    final = await studio.job(job.id)
    assert final.status is JobStatus.SUCCEEDED and done == final
    assert len(await studio.media_of(job.id)) == PARAMS.count
    assert len(studio.storage.objects) == PARAMS.count, "the loser's copies are discarded"
    state = await studio.account(user)
    assert state.balance == CREDITS - COST and len(state.of_kind(EntryKind.SETTLE)) == 1


async def test_two_deliveries_at_once_submit_the_job_to_the_provider_only_once(
    studio: Studio,
) -> None:
    studio.use_gpu(YieldingGpu(steps=3))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    results = await asyncio.gather(studio.deliver(job.id), studio.deliver(job.id))
    assert len(studio.gpu.submitted) == 1
    assert (await studio.job(job.id)).status is JobStatus.SUCCEEDED
    assert sorted(r.status.value for r in results if r is not None) == ["dispatched", "succeeded"]
    assert len(await studio.media_of(job.id)) == PARAMS.count
    state = await studio.account(user)
    assert state.balance == CREDITS - COST and len(state.of_kind(EntryKind.SETTLE)) == 1


async def test_a_cancelled_job_is_never_sent_to_the_provider(studio: Studio) -> None:
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job.id)
    done = await studio.deliver(job.id)
    assert done is not None and done.status is JobStatus.CANCELLED
    assert studio.gpu.submitted == []
    await assert_released_once(studio, job)


async def test_a_wake_up_with_no_job_to_claim_does_nothing(studio: Studio) -> None:
    assert await studio.processor.process_next("image") is None
    assert studio.gpu.submitted == []


async def test_failing_a_job_twice_releases_its_hold_once(studio: Studio) -> None:
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    error = JobError(FailureReason.INTERNAL, "worker crashed")
    first = await studio.processor.fail(job.id, error)
    second = await studio.processor.fail(job.id, JobError(FailureReason.TIMEOUT, "late"))
    assert first is not None and first == second and first.error == error
    await assert_released_once(studio, job)


# --- a graceful stop ----------------------------------------------------------------------


class LocalLikeGpu(InMemoryGpuProvider):
    """A provider whose work ends with this process (as the preview renderer's)."""

    durable = False


class SlowSubmitGpu(InMemoryGpuProvider):
    """Its submissions wait until ``release`` is set, as a slow provider API would."""

    def __init__(self) -> None:
        super().__init__(steps=1)
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    async def submit(self, request: GpuRequest) -> str:
        self.entered.set()
        await self.release.wait()
        return await super().submit(request)


async def charged_once(studio: Studio, user: uuid.UUID) -> bool:
    """The job's price settled exactly once, nothing released."""
    state = await studio.account(user)
    return (
        state.balance == CREDITS - COST
        and len(state.of_kind(EntryKind.SETTLE)) == 1
        and state.of_kind(EntryKind.RELEASE) == []
    )


async def at_provider(studio: Studio, job_id: uuid.UUID) -> asyncio.Task[Job]:
    """The job being followed at its provider by ``studio.processor``, in a task."""
    task = asyncio.create_task(studio.deliver(job_id))
    for _ in range(100):
        await asyncio.sleep(0)
        if (await studio.job(job_id)).provider_job_id is not None:
            return task
    raise AssertionError("the job never reached its provider")


async def test_a_stopping_worker_claims_nothing_more(studio: Studio) -> None:
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    studio.processor.stop_claiming()
    assert await studio.processor.process_next("image") is None
    unclaimed = await studio.deliver(job.id)
    assert unclaimed is not None and unclaimed.status is JobStatus.QUEUED
    assert studio.gpu.submitted == []


async def test_a_job_left_at_a_cloud_provider_is_taken_over_and_charged_once(
    studio: Studio,
) -> None:
    studio.use_gpu(InMemoryGpuProvider(steps=10_000))  # longer than the grace
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = await at_provider(studio, job.id)

    assert await studio.processor.stop(grace=0.01) == 1
    assert task.cancelled()
    left = await studio.job(job.id)
    assert left.status in (JobStatus.DISPATCHED, JobStatus.RUNNING) and left.attempts == 1
    assert left.lease_expired(studio.clock.now()) and studio.gpu.cancelled == []

    studio.gpu.steps = 0  # the provider finishes it; another worker follows it on
    other = studio.processor_for(studio.gpu)
    done = await studio.deliver(job.id, other)
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert len(studio.gpu.submitted) == 1  # never started twice
    assert await charged_once(studio, user)


async def test_a_job_left_at_a_provider_this_worker_lacks_is_retried_on_its_own(
    studio: Studio,
) -> None:
    """Taken over by a worker configured without the job's provider (a provider taken
    out of GPU_PROVIDERS by a deploy): the attempt counts as lost and the job goes
    back to the queue for a provider this worker has, charged once. (It raised
    KeyError while recording the failure against a provider this process does not
    route: the job stayed leased and was taken over again and again.)"""
    studio.use_gpu(InMemoryGpuProvider("retired", steps=10_000))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    await at_provider(studio, job.id)
    assert await studio.processor.stop(grace=0.01) == 1

    other = InMemoryGpuProvider("current", steps=0)
    worker = studio.processor_for(other)
    lost = await studio.deliver(job.id, worker)
    assert (lost.status, lost.attempts) == (JobStatus.QUEUED, 1)
    assert lost.error is not None and "retired" in lost.error.message
    studio.clock.advance(seconds=60)  # its retry's backoff
    done = await studio.deliver(job.id, worker)
    assert (done.status, done.provider, done.attempts) == (JobStatus.SUCCEEDED, "current", 2)
    assert len(other.submitted) == 1
    assert await charged_once(studio, user)


async def test_a_job_rendering_in_the_stopping_process_is_requeued_with_its_attempt_given_back(
    studio: Studio,
) -> None:
    gpu = LocalLikeGpu(steps=10_000)
    studio.use_gpu(gpu)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = await at_provider(studio, job.id)
    provider_job_id = (await studio.job(job.id)).provider_job_id

    assert await studio.processor.stop(grace=0.01) == 1
    assert task.cancelled()
    back = await studio.job(job.id)
    assert (back.status, back.attempts, back.provider_job_id) == (JobStatus.QUEUED, 0, None)
    assert back.is_due(studio.clock.now()) and gpu.cancelled == [provider_job_id]
    assert (await studio.hold_of(back)).status is HoldStatus.OPEN

    gpu.steps = 0  # the next process runs it from the start, as its first attempt
    done = await studio.deliver(job.id, studio.processor_for(gpu))
    assert done is not None and done.status is JobStatus.SUCCEEDED and done.attempts == 1
    assert await charged_once(studio, user)


async def test_a_stop_during_a_submission_lets_it_be_recorded_so_it_never_runs_twice(
    studio: Studio,
) -> None:
    gpu = SlowSubmitGpu()
    studio.use_gpu(gpu)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = asyncio.create_task(studio.deliver(job.id))
    await gpu.entered.wait()  # the request is at the provider

    asyncio.get_running_loop().call_later(0.05, gpu.release.set)  # it answers meanwhile
    assert await studio.processor.stop(grace=0) == 1
    assert task.cancelled()
    left = await studio.job(job.id)
    assert left.provider_job_id is not None and left.lease_expired(studio.clock.now())

    done = await studio.deliver(job.id, studio.processor_for(gpu))
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert len(gpu.submitted) == 1 and gpu.cancelled == []


async def test_a_job_that_ends_within_the_grace_is_not_handed_back(studio: Studio) -> None:
    studio.use_gpu(YieldingGpu(steps=3))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = asyncio.create_task(studio.deliver(job.id))
    await asyncio.sleep(0)
    assert await studio.processor.stop(grace=5) == 0
    done = await task
    assert done is not None and done.status is JobStatus.SUCCEEDED


class DyingWorkerGpu(InMemoryGpuProvider):
    """Never finishes a job. Its poll number ``hang_at`` never answers: the worker
    polling there is then killed (its task cancelled, nothing handed back)."""

    def __init__(self) -> None:
        super().__init__(steps=10_000)
        self.polls = 0
        self.hang_at: int | None = None
        self.hung = asyncio.Event()

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        self.polls += 1
        if self.polls == self.hang_at:
            self.hung.set()
            await asyncio.Event().wait()
        return await super().poll(provider_job_id)


async def test_the_timeout_runs_from_the_providers_acceptance_whichever_worker_follows_the_job(
    studio: Studio,
) -> None:
    gpu = DyingWorkerGpu()
    studio.use_gpu(gpu)
    timeout, poll_interval = 100.0, 2.0
    studio.processor = studio.processor_for(gpu, timeout=timeout)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    gpu.hang_at = 10  # the first worker dies 18 s into the attempt
    first = asyncio.create_task(studio.deliver(job.id))
    await gpu.hung.wait()
    first.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await first
    accepted = (await studio.job(job.id)).submitted_at
    assert accepted is not None
    studio.clock.advance(POLICY.lease_seconds)  # its lease runs out: the job is abandoned

    other = studio.processor_for(gpu, timeout=timeout)
    timed_out = await studio.deliver(job.id, other)  # takes the job over, polls the same work

    assert timed_out is not None and timed_out.status is JobStatus.QUEUED
    assert timed_out.error is not None and timed_out.error.reason is FailureReason.TIMEOUT
    assert timed_out.attempts == 1 and timed_out.submitted_at is None
    spent = (studio.clock.now() - accepted).total_seconds()
    assert timeout <= spent < timeout + poll_interval, "the takeover got no new allowance"
    assert len(gpu.submitted) == 1 and len(gpu.cancelled) == 1

    # the retry is a new attempt: a new submission, and the whole timeout again
    assert timed_out.next_attempt_at is not None
    studio.clock.advance((timed_out.next_attempt_at - studio.clock.now()).total_seconds())
    retried_at = studio.clock.now()
    again = await studio.deliver(job.id, other)
    assert again is not None and again.attempts == 2
    assert again.error is not None and again.error.reason is FailureReason.TIMEOUT
    assert (studio.clock.now() - retried_at).total_seconds() >= timeout
    assert len(gpu.submitted) == 2


# --- a crash of ours ----------------------------------------------------------------------


class CrashingGpu(InMemoryGpuProvider):
    """Its answers break the processing (as an adapter bug would): at ``where``."""

    def __init__(self, where: str) -> None:
        super().__init__(steps=1)
        self.where = where

    async def submit(self, request: GpuRequest) -> str:
        if self.where == "submit":
            raise KeyError("status")
        return await super().submit(request)

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        if self.where == "poll":
            raise KeyError("status")
        return await super().poll(provider_job_id)


@pytest.mark.parametrize("where", ["submit", "poll"])
async def test_a_job_whose_processing_crashes_fails_once_and_returns_its_credits(
    studio: Studio, where: str
) -> None:
    gpu = CrashingGpu(where)
    studio.use_gpu(gpu)
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    done = await studio.deliver(job.id)

    assert done is not None and done.status is JobStatus.FAILED
    assert done.error is not None and done.error.reason is FailureReason.INTERNAL
    assert "KeyError" in done.error.message
    await assert_released_once(studio, job)
    # the provider's work, if it had started, is not left running unfollowed
    assert gpu.cancelled == ([] if where == "submit" else ["memory-1"])
    # and nothing is left to take over: a second worker finds a finished job
    studio.clock.advance(3600)
    assert (await studio.deliver(job.id, studio.processor_for(gpu))) == done


async def test_a_submission_slower_than_the_lease_keeps_the_job_and_is_never_doubled(
    studio: Studio,
) -> None:
    gpu = SlowSubmitGpu()
    studio.use_gpu(gpu)
    lease = 0.3  # seconds; renewed every 0.1 s while the submission waits
    studio.processor = studio.processor_for(gpu, policy=QueuePolicy(lease_seconds=lease))
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)
    task = asyncio.create_task(studio.deliver(job.id))
    await gpu.entered.wait()

    studio.clock.advance(10 * lease)  # the first lease is long gone...
    await asyncio.sleep(3 * lease)  # ...but renewed meanwhile
    other = studio.processor_for(gpu, policy=QueuePolicy(lease_seconds=lease))
    held = await asyncio.wait_for(studio.deliver(job.id, other), 5)  # no takeover: at once
    assert held is not None and held.lease_owner == studio.processor.worker_id
    assert not held.lease_expired(studio.clock.now())

    gpu.release.set()
    done = await task
    assert done is not None and done.status is JobStatus.SUCCEEDED
    assert len(gpu.submitted) == 1


# --- what differs by job kind -------------------------------------------------------------


async def queued_job(studio: Studio, kind: ModelKind, model_id: str, params: JobParams) -> Job:
    """A job of ``kind`` queued straight into the store (training has no submission
    use case yet: its job rides on the same machinery)."""
    user = await studio.user_with(0)
    now = studio.clock.now()
    job = Job(
        id=uuid.uuid4(),
        user_id=user,
        kind=kind,
        model_id=model_id,
        params=params,
        cost=0,
        hold_id=None,
        status=JobStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    async with studio.factory() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    return job


@pytest.mark.parametrize(
    ("kind", "model_id", "params", "limit"),
    [
        (ModelKind.VIDEO, "wan-2.1", VideoParams(prompt="a kite"), 900.0),
        (ModelKind.TRAINING, "flux-lora", ImageParams(prompt="ohwx person"), 3600.0),
    ],
)
async def test_a_video_and_a_training_job_time_out_by_their_own_limits(
    studio: Studio, kind: ModelKind, model_id: str, params: JobParams, limit: float
) -> None:
    assert POLICY.timeouts.seconds_for(kind.value) == limit
    studio.use_gpu(InMemoryGpuProvider(steps=1_000_000))  # never finishes
    studio.processor = studio.processor_for(studio.gpu, timeout=900.0)
    job = await queued_job(studio, kind, model_id, params)
    started = studio.clock.now()

    timed_out = await studio.deliver(job.id)

    assert timed_out.status is JobStatus.QUEUED and timed_out.attempts == 1
    assert timed_out.error == JobError(FailureReason.TIMEOUT, f"no result after {limit:.0f}s")
    spent = (studio.clock.now() - started).total_seconds()
    assert limit <= spent < limit + 2, "its own limit, not another kind's"
    [request] = studio.gpu.submitted
    assert request.time_limit == limit, "the provider is told the attempt's limit"


async def test_a_job_of_a_kind_without_an_output_handler_fails_and_returns_its_credits(
    studio: Studio,
) -> None:
    studio.processor = JobProcessor(
        studio.factory,
        studio.gpu,
        studio.storage,
        studio.clock,
        DEFAULT_CATALOG,
        policy=POLICY,
        outputs={ModelKind.VIDEO: VideoOutputs(studio.clock)},  # no images here
    )
    user = await studio.user_with(CREDITS)
    job = await studio.submitted_job(user, PARAMS)

    done = await studio.deliver(job.id)

    assert done.status is JobStatus.FAILED
    assert done.error is not None and done.error.reason is FailureReason.INTERNAL
    await assert_released_once(studio, job)
    await assert_nothing_kept(studio, job)


class InlineGpu(InMemoryGpuProvider):
    inline_inputs = True


@pytest.mark.parametrize("inline", [False, True])
async def test_a_provider_gets_the_inputs_inline_only_when_it_declares_it(
    studio: Studio, inline: bool
) -> None:
    gpu = InlineGpu() if inline else InMemoryGpuProvider()
    studio.use_gpu(gpu)
    image, mask = tiny_png(64, 64), tiny_png(64, 64, (255, 255, 255))
    for key, data in (("u/uploads/i.png", image), ("u/uploads/m.png", mask)):
        await studio.storage.put(key, data, "image/png")
    params = EditParams(
        prompt="a boat",
        image_key="u/uploads/i.png",
        mask_key="u/uploads/m.png",
        width=64,
        height=64,
    )
    job = await queued_job(studio, ModelKind.EDIT, "sdxl-inpaint", params)

    done = await studio.deliver(job.id)

    assert done.status is JobStatus.SUCCEEDED
    [request] = gpu.submitted
    assert [(i.name, i.content_type) for i in request.inputs] == [
        ("image", "image/png"),
        ("mask", "image/png"),
    ]
    assert all(i.url for i in request.inputs), "a signed URL, always"
    expected = [image, mask] if inline else [None, None]
    assert [i.data for i in request.inputs] == expected
