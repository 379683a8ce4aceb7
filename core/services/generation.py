"""Submitting, reading and cancelling generation jobs (the API side)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec

from core.errors import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    NotFound,
)
from core.idempotency import IdempotencyRecord
from core.jobs import ImageParams, Job, JobStatus
from core.pricing import Catalog, ModelKind
from core.profiles import SubscriptionTier
from core.services.credits import place_hold, release_hold
from ports.clock import Clock
from ports.queue import JobQueue
from ports.repositories import UnitOfWork, UnitOfWorkFactory

#: queue priority by subscription tier: paying users first
TIER_PRIORITY = {SubscriptionTier.FREE: 0, SubscriptionTier.PRO: 5, SubscriptionTier.PREMIUM: 9}


class Submitted(msgspec.Struct, frozen=True):
    """What a submission answered: the status code and JSON body to send (and replay)."""

    status_code: int
    body: bytes
    job_id: uuid.UUID | None
    replayed: bool = False


async def idempotent(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    now: datetime,
) -> IdempotencyRecord | None:
    """Claim an idempotency key inside ``uow``: return the stored record to replay,
    or None to go ahead (the caller then stores its answer in the same unit of work).

    Raises IdempotencyInProgress while another request holds the key, and
    IdempotencyMismatch when the key was used for a different request.
    """
    if key is None:
        return None
    if not await uow.idempotency.try_lock(user_id, key):
        raise IdempotencyInProgress("a request with this Idempotency-Key is in progress")
    record = await uow.idempotency.get(user_id, key)
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used for a different request", field="Idempotency-Key"
        )
    return record


async def submit_image(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    catalog: Catalog,
    *,
    user_id: uuid.UUID,
    email: str | None,
    model_id: str,
    params: ImageParams,
    idempotency_key: str | None,
    request_hash: str,
    render: Callable[[Job], Awaitable[bytes]],
) -> Submitted:
    """Price the request, hold its cost and queue the job, atomically.

    ``render`` turns the new job into the response body, so that the exact bytes
    can be stored for replays. Nothing is written unless everything is.
    """
    spec = catalog.get(model_id, ModelKind.IMAGE)
    params.validate(max_count=spec.max_count, max_width=spec.max_width, max_height=spec.max_height)
    cost = catalog.image_price(model_id, params.width, params.height, params.count)
    now = clock.now()
    async with uow_factory() as uow:
        profile = await uow.profiles.ensure(user_id, email)
        replay = await idempotent(
            uow, user_id=user_id, key=idempotency_key, request_hash=request_hash, now=now
        )
        if replay is not None:
            job_id = msgspec.json.decode(replay.response_body).get("id")
            return Submitted(
                replay.status_code,
                replay.response_body,
                uuid.UUID(job_id) if job_id else None,
                replayed=True,
            )
        job_id = uuid.uuid4()
        hold = await place_hold(
            uow, user_id=user_id, amount=cost, reference=f"job:{job_id}", now=now
        )
        job = Job(
            id=job_id,
            user_id=user_id,
            kind=ModelKind.IMAGE,
            model_id=model_id,
            params=params,
            cost=cost,
            hold_id=hold.id,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
            priority=TIER_PRIORITY.get(profile.subscription_tier, 0),
        )
        await uow.jobs.add(job)
        body = await render(job)
        if idempotency_key is not None:
            await uow.idempotency.add(
                IdempotencyRecord(
                    user_id=user_id,
                    key=idempotency_key,
                    request_hash=request_hash,
                    status_code=202,
                    response_body=body,
                    created_at=now,
                )
            )
        await uow.commit()
    # enqueue only after commit: a lost message is recovered from the database
    await queue.enqueue(job.id, kind=job.kind.value, priority=job.priority)
    return Submitted(202, body, job.id)


async def get_job(uow_factory: UnitOfWorkFactory, *, user_id: uuid.UUID, job_id: uuid.UUID) -> Job:
    """The user's own job; another user's job is NotFound, not Forbidden."""
    async with uow_factory() as uow:
        job = await uow.jobs.get(job_id)
    if job is None or job.user_id != user_id:
        raise NotFound(f"no job {job_id}", field="job_id")
    return job


async def cancel_job(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, user_id: uuid.UUID, job_id: uuid.UUID
) -> Job:
    """Cancel a job that has not finished and release its hold, in one commit.

    Raises JobFinished if it already ended. The worker notices the cancellation
    and stops the provider's work.
    """
    now = clock.now()
    async with uow_factory() as uow:
        job = await uow.jobs.get(job_id, lock=True)
        if job is None or job.user_id != user_id:
            raise NotFound(f"no job {job_id}", field="job_id")
        job = await uow.jobs.update(job.cancel(now))
        if job.hold_id is not None:
            await release_hold(uow, job.hold_id, now)
        await uow.commit()
    return job
