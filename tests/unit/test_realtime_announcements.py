"""What the open app is told live (core/services/realtime.py), on memory adapters:
``job.updated`` as a job moves, ``credits.changed`` when a balance moves, each only
after its unit of work committed."""

from __future__ import annotations

import uuid

from genstudio.adapters.memory import InMemoryGpuProvider
from genstudio.adapters.memory.realtime import RecordingRealtimePublisher
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, JobError, JobStatus
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.jobs import cancel_job
from genstudio.core.services.generation.submit import submit_image
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.realtime import credits_changed
from genstudio.ports.realtime import CREDITS_CHANGED, JOB_UPDATED
from tests.unit.support import POLICY, Studio

PARAMS = ImageParams(prompt="a lighthouse at dusk", width=512, height=512, count=1)
COST = DEFAULT_CATALOG.image_price("flux-schnell", 512, 512, 1)


async def _submit(
    studio: Studio, user: uuid.UUID, realtime: RecordingRealtimePublisher
) -> uuid.UUID:
    submitted = await submit_image(
        studio.factory,
        studio.queue,
        studio.clock,
        DEFAULT_CATALOG,
        user_id=user,
        email=None,
        model_id="flux-schnell",
        params=PARAMS,
        idempotency_key=None,
        request_hash="h",
        realtime=realtime,
    )
    assert submitted.job_id is not None
    return submitted.job_id


def _processor(studio: Studio, realtime: RecordingRealtimePublisher) -> JobProcessor:
    return JobProcessor(
        studio.factory,
        studio.gpu,
        studio.storage,
        studio.clock,
        DEFAULT_CATALOG,
        policy=POLICY,
        poll_interval=1.0,
        realtime=realtime,
    )


async def test_a_submission_announces_the_queued_job_and_the_held_balance() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    job_id = await _submit(studio, user, realtime)
    assert [(e.event_type, e.payload) for e in realtime.of(user)] == [
        (
            JOB_UPDATED,
            {
                "jobId": str(job_id),
                "kind": "image",
                "status": "queued",
                "progress": 0,
                "error": None,
            },
        ),
        (CREDITS_CHANGED, {"balance": 20 - COST}),
    ]


async def test_a_job_run_to_success_announces_each_status_and_progress_step_once() -> None:
    studio, realtime = Studio(InMemoryGpuProvider(steps=3)), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    job_id = await _submit(studio, user, realtime)
    realtime.events.clear()
    job = await studio.deliver(job_id, _processor(studio, realtime))
    assert job.status is JobStatus.SUCCEEDED
    updates = [e.payload for e in realtime.of(user, JOB_UPDATED)]
    statuses = [u["status"] for u in updates]
    assert statuses[0] == "dispatched" and statuses[-1] == "succeeded"
    assert "running" in statuses
    progress = [int(str(u["progress"])) for u in updates if u["status"] == "running"]
    assert progress == sorted(set(progress))  # each step once, never backwards
    assert all(u["jobId"] == str(job_id) for u in updates)
    assert realtime.of(user, CREDITS_CHANGED) == []  # settling a hold moves no balance


async def test_a_cancelled_job_announces_its_status_and_the_credits_back() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    job_id = await _submit(studio, user, realtime)
    realtime.events.clear()
    await cancel_job(studio.factory, studio.clock, user_id=user, job_id=job_id, realtime=realtime)
    assert [
        (e.event_type, e.payload.get("status"), e.payload.get("balance")) for e in realtime.events
    ] == [
        (JOB_UPDATED, "cancelled", None),
        (CREDITS_CHANGED, None, 20),
    ]


async def test_a_failed_job_announces_the_failure_and_the_released_credits() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    job_id = await _submit(studio, user, realtime)
    realtime.events.clear()
    await _processor(studio, realtime).fail(job_id, JobError(FailureReason.CONTENT, "refused"))
    job_event, credit_event = realtime.events
    assert job_event.payload["status"] == "failed"
    assert job_event.payload["error"] == {"reason": "content", "message": "refused"}
    assert credit_event.payload == {"balance": 20}


async def test_a_unit_of_work_that_rolls_back_announces_nothing() -> None:
    studio, realtime = Studio(), RecordingRealtimePublisher()
    user = await studio.user_with(20)
    job_id = await _submit(studio, user, realtime)
    realtime.events.clear()
    job = await studio.job(job_id)
    async with studio.factory() as uow:
        from genstudio.core.services.credits import release_hold

        assert job.hold_id is not None
        await release_hold(uow, job.hold_id, studio.clock.now())
        credits_changed(uow, realtime)
        # no commit: rolled back on exit
    assert realtime.events == []
