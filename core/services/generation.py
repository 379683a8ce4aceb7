"""Submitting, reading and cancelling generation jobs (the API side)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import msgspec

from core.errors import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
)
from core.idempotency import IdempotencyRecord
from core.ids import new_id
from core.job_events import JobEvent, JobEventKind
from core.jobs import (
    EditParams,
    ImageParams,
    Job,
    JobParams,
    JobStatus,
    VideoInput,
    VideoParams,
    check_text,
)
from core.media import MediaAsset, MediaKind, upload_key
from core.pricing import Catalog, ModelKind
from core.profiles import SubscriptionTier
from core.services.captions import caption_of
from core.services.credits import lock_account, place_hold, release_hold
from ports.ai import Captioner, PromptEnhancer
from ports.clock import Clock
from ports.imaging import ImageInspector, InspectedImage
from ports.queue import JobQueue
from ports.repositories import UnitOfWork, UnitOfWorkFactory
from ports.storage import MediaStorage

log = logging.getLogger("genstudio.jobs")

#: an upload still expected this long after it was stored belongs to a submission
#: that never committed: far longer than any request takes
ORPHAN_AFTER = timedelta(hours=1)

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
    held, record = await uow.idempotency.claim(user_id, key)
    if not held:
        raise IdempotencyInProgress("a request with this Idempotency-Key is in progress")
    if record is None:
        return None
    if record.request_hash != request_hash:
        raise IdempotencyMismatch(
            "this Idempotency-Key was used for a different request", field="Idempotency-Key"
        )
    return record


def _replayed(record: IdempotencyRecord) -> Submitted:
    job_id = msgspec.json.decode(record.response_body).get("id")
    return Submitted(
        record.status_code,
        record.response_body,
        uuid.UUID(job_id) if job_id else None,
        replayed=True,
    )


async def answered_before(
    uow_factory: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    key: str | None,
    request_hash: str,
) -> Submitted | None:
    """The stored answer a retry of this request would replay, read without claiming
    the key: so that paid work the replay would throw away (the prompt's enhancement)
    is not done again. None when there is none yet, or the key was used for another
    request: the submission itself then decides, under the key's lock."""
    if key is None:
        return None
    async with uow_factory() as uow:
        record = await uow.idempotency.get(user_id, key)
    if record is None or record.request_hash != request_hash:
        return None
    return _replayed(record)


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
    """Validate and price a text-to-image request, then ``submit_job`` it."""
    spec = catalog.get(model_id, ModelKind.IMAGE)
    params.validate(max_count=spec.max_count, max_width=spec.max_width, max_height=spec.max_height)
    cost = catalog.image_price(model_id, params.width, params.height, params.count)
    return await submit_job(
        uow_factory,
        queue,
        clock,
        kind=ModelKind.IMAGE,
        model_id=model_id,
        params=params,
        cost=cost,
        user_id=user_id,
        email=email,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        render=render,
    )


class Upload(msgspec.Struct, frozen=True):
    """A file as the client sent it: its bytes and declared content type."""

    data: bytes
    content_type: str | None = None


async def submit_edit(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    catalog: Catalog,
    storage: MediaStorage,
    inspector: ImageInspector,
    *,
    user_id: uuid.UUID,
    email: str | None,
    model_id: str,
    prompt: str,
    negative_prompt: str = "",
    seed: int | None = None,
    strength: float = 0.85,
    image: Upload,
    mask: Upload,
    idempotency_key: str | None,
    request_hash: str,
    render: Callable[[Job], Awaitable[bytes]],
    captioner: Captioner | None = None,
) -> Submitted:
    """Inpainting: check the image and its mask, store both, price and queue the job.

    The uploads are stored privately and recorded as media (no job) in the job's own
    transaction; if the submission does not go through (invalid, 402, a replay or an
    idempotency conflict) the stored objects are deleted again.
    """
    spec = catalog.get(model_id, ModelKind.EDIT)
    picture = await inspector.inspect(image.data, image.content_type, field="image")
    painted = await inspector.inspect_mask(
        mask.data, mask.content_type, field="mask", size=(picture.width, picture.height)
    )
    uploads = _Uploads(uow_factory, storage, clock, user_id, captioner)
    image_key = uploads.plan(picture)
    mask_key = uploads.plan(painted)
    params = EditParams(
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        strength=strength,
        image_key=image_key,
        mask_key=mask_key,
        width=picture.width,
        height=picture.height,
    )
    params.validate(max_width=spec.max_width, max_height=spec.max_height)
    cost = catalog.edit_price(model_id, picture.width, picture.height)
    return await uploads.run(
        lambda assets: submit_job(
            uow_factory,
            queue,
            clock,
            kind=ModelKind.EDIT,
            model_id=model_id,
            params=params,
            cost=cost,
            user_id=user_id,
            email=email,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            render=render,
            uploads=assets,
        )
    )


async def submit_video(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    catalog: Catalog,
    storage: MediaStorage,
    inspector: ImageInspector,
    *,
    user_id: uuid.UUID,
    email: str | None,
    model_id: str,
    input_type: VideoInput,
    prompt: str,
    negative_prompt: str = "",
    duration_seconds: int = 5,
    resolution: str = "480p",
    fps: int = 16,
    seed: int | None = None,
    image: Upload | None = None,
    first_frame: Upload | None = None,
    last_frame: Upload | None = None,
    idempotency_key: str | None,
    request_hash: str,
    render: Callable[[Job], Awaitable[bytes]],
    captioner: Captioner | None = None,
) -> Submitted:
    """Text, image or keyframes to video, priced per second at the resolution.

    Uploads go as in ``submit_edit``: stored, recorded with the job, removed if the
    submission fails.
    """
    spec = catalog.get(model_id, ModelKind.VIDEO)
    # the cheap checks first, with stand-in keys for the uploads that were sent:
    # nothing is decoded or stored for a request that is wrong anyway
    VideoParams(
        prompt=prompt,
        input_type=input_type,
        negative_prompt=negative_prompt,
        duration_seconds=duration_seconds,
        resolution=resolution,
        fps=fps,
        seed=seed,
        image_key="-" if image else None,
        first_frame_key="-" if first_frame else None,
        last_frame_key="-" if last_frame else None,
    ).validate(resolutions=catalog.video_resolutions(spec.id))
    uploads = _Uploads(uow_factory, storage, clock, user_id, captioner)
    keys: dict[str, str | None] = {}
    for name, upload in (
        ("image", image),
        ("first_frame", first_frame),
        ("last_frame", last_frame),
    ):
        if upload is None:
            keys[name] = None
            continue
        inspected = await inspector.inspect(upload.data, upload.content_type, field=name)
        keys[name] = uploads.plan(inspected)
    params = VideoParams(
        prompt=prompt,
        input_type=input_type,
        negative_prompt=negative_prompt,
        duration_seconds=duration_seconds,
        resolution=resolution,
        fps=fps,
        seed=seed,
        image_key=keys["image"],
        first_frame_key=keys["first_frame"],
        last_frame_key=keys["last_frame"],
    )
    cost = catalog.video_price(model_id, params.duration_seconds, params.resolution)
    return await uploads.run(
        lambda assets: submit_job(
            uow_factory,
            queue,
            clock,
            kind=ModelKind.VIDEO,
            model_id=model_id,
            params=params,
            cost=cost,
            user_id=user_id,
            email=email,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            render=render,
            uploads=assets,
        )
    )


class _Uploads:
    """Uploads of one submission: stored before it, recorded with it, undone without it.

    Each is *expected* (``uow.uploads``, committed) before its bytes are stored, and
    settled by the submission's own transaction or once deleted again; if the process
    dies in between, the reconciler finds it expected long after and deletes it
    (``sweep_orphaned_uploads``), so a user's photo is never kept without a record.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        storage: MediaStorage,
        clock: Clock,
        user_id: uuid.UUID,
        captioner: Captioner | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.storage = storage
        self.clock = clock
        self.user_id = user_id
        self.captioner = captioner
        self.planned: list[tuple[MediaAsset, bytes]] = []

    def plan(self, image: InspectedImage) -> str:
        media_id = new_id()
        asset = MediaAsset(
            id=media_id,
            user_id=self.user_id,
            kind=MediaKind.IMAGE,
            storage_key=upload_key(self.user_id, media_id),
            content_type="image/png",
            width=image.width,
            height=image.height,
            byte_size=len(image.data),
            prompt="",
            model_id="",
            job_id=None,
            created_at=self.clock.now(),
        )
        self.planned.append((asset, image.data))
        return asset.storage_key

    async def run(
        self, submit: Callable[[Sequence[MediaAsset]], Awaitable[Submitted]]
    ) -> Submitted:
        stored: list[str] = []
        if self.planned:
            async with self.uow_factory() as uow:
                for asset, _ in self.planned:
                    await uow.uploads.expect(asset.storage_key, self.user_id, self.clock.now())
                await uow.commit()
        if self.captioner is not None:
            self.planned = [
                (
                    msgspec.structs.replace(
                        asset, caption=await caption_of(self.captioner, data, asset.content_type)
                    ),
                    data,
                )
                for asset, data in self.planned
            ]
        try:
            for asset, data in self.planned:
                stored.append(asset.storage_key)
                await self.storage.put(asset.storage_key, data, asset.content_type)
            result = await submit([asset for asset, _ in self.planned])
        except BaseException:
            await self._delete(stored)
            raise
        if result.replayed:  # the first request's uploads serve the job; ours are spare
            await self._delete(stored)
        return result

    async def _delete(self, stored: list[str]) -> None:
        # best effort: the submission's own error matters more
        unstored = [a.storage_key for a, _ in self.planned if a.storage_key not in stored]
        await _discard_uploads(self.uow_factory, self.storage, stored, unstored=unstored)


async def _discard_uploads(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    stored: Sequence[str],
    *,
    unstored: Sequence[str] = (),
) -> int:
    """Delete the stored uploads' objects and settle them, with the uploads that were
    expected but never stored. One whose object could not be deleted stays expected,
    for the reconciler's next pass; so do all of them if settling fails. Returns how
    many objects were deleted and settled."""
    deleted = []
    for key in stored:
        try:
            await storage.delete(key)
        except Exception as exc:  # the storage's own errors are adapter-specific
            log.warning("could not delete an upload", extra={"key": key, "error": str(exc)})
            continue
        deleted.append(key)
    gone = [*deleted, *unstored]
    if not gone:
        return 0
    try:
        async with uow_factory() as uow:
            await uow.uploads.settle(gone)
            await uow.commit()
    except Exception as exc:  # deleting them again later is harmless
        log.warning("could not settle deleted uploads", extra={"keys": gone, "error": str(exc)})
        return 0
    return len(deleted)


async def submit_job(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    *,
    kind: ModelKind,
    model_id: str,
    params: JobParams,
    cost: int,
    user_id: uuid.UUID,
    email: str | None,
    idempotency_key: str | None,
    request_hash: str,
    render: Callable[[Job], Awaitable[bytes]],
    uploads: Sequence[MediaAsset] = (),
) -> Submitted:
    """Hold ``cost`` and queue a job of any kind, atomically; the one path every
    submission takes.

    ``params`` must be validated and ``cost`` priced by the caller. ``render`` turns the
    new job into the response body, so that the exact bytes can be stored for replays.
    ``uploads`` (media the job reads, already in storage) are recorded in the same
    transaction. Nothing is written unless everything is.
    """
    now = clock.now()
    async with uow_factory() as uow:
        if idempotency_key is not None:
            # the account's lock may travel with the key's claim (one round trip): the
            # key is claimed first, then the account locked, as without the hint
            await uow.ledger.will_lock_account(user_id)
        replay = await idempotent(
            uow, user_id=user_id, key=idempotency_key, request_hash=request_hash, now=now
        )
        if replay is not None:
            return _replayed(replay)
        job_id = new_id()
        # the account's lock also reads the profile (its tier): no separate read
        profile, lots = await lock_account(uow, user_id, email)
        hold = await place_hold(
            uow,
            user_id=user_id,
            amount=cost,
            reference=f"job:{job_id}",
            now=now,
            locked=(profile, lots),
        )
        job = Job(
            id=job_id,
            user_id=user_id,
            kind=kind,
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
        for asset in uploads:
            await uow.media.add(asset)
        if uploads:  # recorded now: no longer orphans if this commits
            await uow.uploads.settle([asset.storage_key for asset in uploads])
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
    # enqueue only after commit; if the queue is down the job is still safe in the
    # database and the reconciler wakes a worker for it: the answer stays 202
    await wake(queue, job)
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
        await uow.job_events.add(
            JobEvent.new(
                job.id, user_id, JobEventKind.CANCELLED, "cancelled; credits returned", now
            )
        )
        await uow.commit()
    return job


async def wake(queue: JobQueue, job: Job) -> None:
    """Send the job's wake-up; a queue that is down is logged, not raised."""
    try:
        await queue.enqueue(job.id, kind=job.kind.value, priority=job.priority)
    except Exception as exc:  # the queue's own errors are adapter-specific
        log.warning(
            "could not enqueue; the reconciler will",
            extra={"job_id": str(job.id), "error": f"{type(exc).__name__}: {exc}"},
        )


async def rerun_dead_letter(
    uow_factory: UnitOfWorkFactory, queue: JobQueue, clock: Clock, *, job_id: uuid.UUID
) -> Job:
    """An operator re-runs a dead-lettered job as a new job with a new hold.

    Idempotent: the new job's id derives from the old one, so a second call returns
    the same re-run. Raises NotFound unless the job was dead-lettered, and
    InsufficientCredits if the owner can no longer pay for it.
    """
    new_id = uuid.uuid5(job_id, "rerun")
    now = clock.now()
    async with uow_factory() as uow:
        old = await uow.jobs.get(job_id, lock=True)
        if old is None or old.dead_lettered_at is None:
            raise NotFound(f"no dead-lettered job {job_id}", field="job_id")
        existing = await uow.jobs.get(new_id)
        if existing is not None:
            return existing
        hold = await place_hold(
            uow, user_id=old.user_id, amount=old.cost, reference=f"job:{new_id}", now=now
        )
        job = Job(
            id=new_id,
            user_id=old.user_id,
            kind=old.kind,
            model_id=old.model_id,
            params=old.params,
            cost=old.cost,
            hold_id=hold.id,
            status=JobStatus.QUEUED,
            created_at=now,
            updated_at=now,
            priority=old.priority,
            rerun_of=old.id,
        )
        await uow.jobs.add(job)
        await uow.job_events.add(
            JobEvent.new(old.id, old.user_id, JobEventKind.RERUN, f"re-run as job {new_id}", now)
        )
        await uow.job_events.add(
            JobEvent.new(new_id, old.user_id, JobEventKind.QUEUED, f"re-run of job {old.id}", now)
        )
        await uow.commit()
    await wake(queue, job)
    return job


async def enhanced(params: ImageParams, enhancer: PromptEnhancer) -> ImageParams:
    """The params with the prompt enhanced (the user's words kept as ``original_prompt``).

    The user's words are checked first (a prompt that would be refused is not sent out
    to be enhanced). The enhancer never fails: on any trouble it returns the prompt
    unchanged, and then so does this; an answer that would not pass the checks a
    prompt passes (empty, too long, control characters) counts as such trouble.
    """
    check_text(params.prompt, params.negative_prompt)
    better = await enhancer.enhance(params.prompt)
    if better == params.prompt:
        return params
    try:
        check_text(better, params.negative_prompt)
    except InvalidInput:
        log.warning("the enhanced prompt was unusable; the user's is kept")
        return params
    return msgspec.structs.replace(params, prompt=better, original_prompt=params.prompt)


async def sweep_orphaned_uploads(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    older_than: timedelta = ORPHAN_AFTER,
    limit: int = 200,
) -> int:
    """Delete uploads stored for a submission that never committed (the process died
    between storing and committing). Idempotent; returns how many were swept."""
    async with uow_factory() as uow:
        keys = await uow.uploads.stale(clock.now() - older_than, limit=limit)
    swept = await _discard_uploads(uow_factory, storage, keys)
    if swept:
        log.info("swept orphaned uploads", extra={"count": swept})
    return swept
