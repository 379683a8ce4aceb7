"""Submitting a job: check, price, hold, record, answer once per Idempotency-Key.

Each submission is one use case that owns its transactions. What costs nothing is
checked before what is paid for: the model, the parameters and the price, then a
replay of an answered key and the balance (read, without locks), and only then the
paid calls (a prompt's enhancement, the uploads' captions), outside any transaction;
the hold itself is taken in the submission's own transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime

import msgspec

from genstudio.core.model.analytics import job_submitted
from genstudio.core.model.errors import (
    IdempotencyInProgress,
    IdempotencyMismatch,
    InsufficientCredits,
    InvalidInput,
)
from genstudio.core.model.idempotency import IdempotencyRecord
from genstudio.core.model.ids import new_id
from genstudio.core.model.job_params import (
    EditParams,
    ImageParams,
    JobParams,
    VideoInput,
    VideoParams,
    check_text,
)
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.media import MediaAsset
from genstudio.core.model.moderation import Surface, request_reference
from genstudio.core.model.pricing import Catalog, ModelKind
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import lock_account, place_hold
from genstudio.core.services.generation.jobs import wake
from genstudio.core.services.generation.submitted import Submitted
from genstudio.core.services.generation.uploads import Upload, _Uploads
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.realtime import credits_changed, job_updated
from genstudio.core.services.training.models import with_lora
from genstudio.ports.ai import Captioner, PromptEnhancer
from genstudio.ports.clock import Clock
from genstudio.ports.imaging import ImageInspector, InspectedImage
from genstudio.ports.queue import JobQueue
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")

#: queue priority by subscription tier: paying users first
TIER_PRIORITY = {SubscriptionTier.FREE: 0, SubscriptionTier.PRO: 5, SubscriptionTier.PREMIUM: 9}


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


async def answered_or_affordable(
    uow_factory: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    key: str | None,
    request_hash: str,
    cost: int,
) -> Submitted | None:
    """The free checks a submission makes before its paid work (a prompt's
    enhancement, captions), whose answer a replay or a refusal would throw away.

    Returns the stored answer a retry of this request replays; raises
    IdempotencyMismatch when the key was used for a different request (a stored record
    never changes) and InsufficientCredits when the balance is short of ``cost``. None:
    go ahead. Read without claiming the key or locking the account: the submission's
    own transaction decides again (a balance spent meanwhile is refused there).
    """
    async with uow_factory() as uow:
        record = None if key is None else await uow.idempotency.get(user_id, key)
        if record is not None:
            if record.request_hash != request_hash:
                raise IdempotencyMismatch(
                    "this Idempotency-Key was used for a different request",
                    field="Idempotency-Key",
                )
            return Submitted.replay(record)
        balance = await uow.ledger.balance(user_id)
    if balance < cost:
        raise InsufficientCredits(required=cost, available=balance)
    return None


#: an uploaded picture to moderate: (the part's field, PNG bytes)
Picture = tuple[str, bytes]


def checks_balance(moderation: Moderation | None, pictures: Sequence[Picture] = ()) -> bool:
    """Whether ``moderated`` looks at a replay and the balance first (so that the
    caller need not again before its own paid calls)."""
    return moderation is not None and (moderation.remote or bool(pictures))


async def moderated(
    uow_factory: UnitOfWorkFactory,
    moderation: Moderation | None,
    user_id: uuid.UUID,
    prompt: str,
    key: str | None,
    request_hash: str,
    cost: int,
    pictures: Sequence[Picture] = (),
) -> Submitted | None:
    """The prompt, then the uploaded pictures (surface ``edit_input``), through
    moderation, after the free checks and before any paid call (issue #19). Raises
    ContentRefused (422 naming ``prompt`` or the picture's part: nothing is held or
    stored, a strike is recorded) or GenerationSuspended (403).

    Where a classifier calls out of the process (``moderation.remote``), or there are
    pictures to classify (a model on this process's CPUs), a replay of the key and the
    balance are looked at first, as before any paid call: a request that would be
    answered from its key or refused 402 sends nothing out and costs no classifying.
    Returns the stored answer to replay then; None: go ahead.

    A request retried with its Idempotency-Key and refused again records no second
    strike: the strike's reference is the request's (``request_reference``).
    """
    if moderation is None:
        return None
    if checks_balance(moderation, pictures):
        answered = await answered_or_affordable(
            uow_factory, user_id=user_id, key=key, request_hash=request_hash, cost=cost
        )
        if answered is not None:
            return answered
    reference = request_reference(key, request_hash)
    await moderation.check_prompt(user_id, prompt, reference=reference)
    if pictures:
        await moderation.check_images(
            [(field, data, "image/png") for field, data in pictures],
            Surface.EDIT_INPUT,
            user_id=user_id,
            reference=reference,
        )
    return None


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
    enhancer: PromptEnhancer | None = None,
    realtime: RealtimePublisher | None = None,
    analytics: Tracker | None = None,
    moderation: Moderation | None = None,
) -> Submitted:
    """Validate and price a text-to-image request, then ``submit_job`` it.

    ``enhancer``: given when the user asked for the prompt to be enhanced. That is a
    paid call, made only for a request that passed the free checks (model, params,
    a replay of its key, the balance), and outside any transaction.
    """
    spec = catalog.get(model_id, ModelKind.IMAGE)
    params.validate(max_count=spec.max_count, max_width=spec.max_width, max_height=spec.max_height)
    # the user's own model (issue #16): theirs, for this model, before anything is held
    params = await with_lora(uow_factory, user_id=user_id, model_id=model_id, params=params)
    cost = catalog.image_price(model_id, params.width, params.height, params.count)
    answered = await moderated(
        uow_factory, moderation, user_id, params.prompt, idempotency_key, request_hash, cost
    )
    if answered is not None:
        return answered
    if enhancer is not None:
        check_text(params.prompt, params.negative_prompt)
        answered = await answered_or_affordable(
            uow_factory, user_id=user_id, key=idempotency_key, request_hash=request_hash, cost=cost
        )
        if answered is not None:
            return answered
        params = await enhanced(params, enhancer)
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
        realtime=realtime,
        analytics=analytics,
    )


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
    captioner: Captioner | None = None,
    realtime: RealtimePublisher | None = None,
    analytics: Tracker | None = None,
    moderation: Moderation | None = None,
) -> Submitted:
    """Inpainting: check the image and its mask, store both, price and queue the job.

    The uploads are stored privately and recorded as media (no job) in the job's own
    transaction; if the submission does not go through (invalid, 402, a replay or an
    idempotency conflict) the stored objects are deleted again. With a captioner (a
    paid call per upload), a replay or a refusal found before it stores nothing.
    """
    spec = catalog.get(model_id, ModelKind.EDIT)
    uploads = _Uploads(uow_factory, storage, clock, user_id, captioner)
    picture, image_key, mask_key = await _planned_edit(inspector, uploads, image, mask)
    width, height = picture.width, picture.height
    params = EditParams(
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        strength=strength,
        image_key=image_key,
        mask_key=mask_key,
        width=width,
        height=height,
    )
    params.validate(max_width=spec.max_width, max_height=spec.max_height)
    cost = catalog.edit_price(model_id, width, height)
    pictures = [("image", picture.data)]  # the mask is black and white: nothing to see
    answered = await moderated(
        uow_factory, moderation, user_id, prompt, idempotency_key, request_hash, cost, pictures
    )
    if answered is not None:
        return answered
    return await _submit_with_uploads(
        uow_factory,
        queue,
        clock,
        uploads,
        # the captions are paid for: the free checks first (unless moderation made them)
        paid_first=captioner is not None and not checks_balance(moderation, pictures),
        kind=ModelKind.EDIT,
        model_id=model_id,
        params=params,
        cost=cost,
        realtime=realtime,
        analytics=analytics,
        user_id=user_id,
        email=email,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


async def _planned_edit(
    inspector: ImageInspector, uploads: _Uploads, image: Upload, mask: Upload
) -> tuple[InspectedImage, str, str]:
    """Check the picture, then its mask at the picture's size, and plan both uploads.
    Returns the picture as inspected and the two storage keys."""
    picture = await inspector.inspect(image.data, image.content_type, field="image")
    painted = await inspector.inspect_mask(
        mask.data, mask.content_type, field="mask", size=(picture.width, picture.height)
    )
    return picture, uploads.plan(picture), uploads.plan(painted)


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
    captioner: Captioner | None = None,
    realtime: RealtimePublisher | None = None,
    analytics: Tracker | None = None,
    moderation: Moderation | None = None,
) -> Submitted:
    """Text, image or keyframes to video, priced per second at the resolution.

    Uploads go as in ``submit_edit``: stored, recorded with the job, removed if the
    submission fails.
    """
    spec = catalog.get(model_id, ModelKind.VIDEO)
    frames = {"image": image, "first_frame": first_frame, "last_frame": last_frame}
    # the cheap checks first, with stand-in keys for the uploads that were sent:
    # nothing is decoded or stored for a request that is wrong anyway
    draft = VideoParams(
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
    )
    draft.validate(resolutions=catalog.video_resolutions(spec.id))
    cost = catalog.video_price(model_id, draft.duration_seconds, draft.resolution)
    uploads = _Uploads(uow_factory, storage, clock, user_id, captioner)
    params, pictures = await _with_frames(draft, inspector, uploads, frames)
    answered = await moderated(
        uow_factory, moderation, user_id, prompt, idempotency_key, request_hash, cost, pictures
    )
    if answered is not None:
        return answered
    return await _submit_with_uploads(
        uow_factory,
        queue,
        clock,
        uploads,
        # as for an edit
        paid_first=bool(uploads.planned)
        and captioner is not None
        and not checks_balance(moderation, pictures),
        kind=ModelKind.VIDEO,
        model_id=model_id,
        params=params,
        cost=cost,
        realtime=realtime,
        analytics=analytics,
        user_id=user_id,
        email=email,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )


async def _with_frames(
    draft: VideoParams,
    inspector: ImageInspector,
    uploads: _Uploads,
    frames: dict[str, Upload | None],
) -> tuple[VideoParams, list[Picture]]:
    """Check each frame that was sent, in order, plan its upload, and put its storage
    key in place of the draft's stand-in (None for a frame not sent). Returns the
    params and the frames as inspected, for moderation."""
    keys: dict[str, str | None] = {}
    pictures: list[Picture] = []
    for name, upload in frames.items():
        if upload is None:
            keys[name] = None
            continue
        inspected = await inspector.inspect(upload.data, upload.content_type, field=name)
        keys[name] = uploads.plan(inspected)
        pictures.append((name, inspected.data))
    params = msgspec.structs.replace(
        draft,
        image_key=keys["image"],
        first_frame_key=keys["first_frame"],
        last_frame_key=keys["last_frame"],
    )
    return params, pictures


async def _submit_with_uploads(
    uow_factory: UnitOfWorkFactory,
    queue: JobQueue,
    clock: Clock,
    uploads: _Uploads,
    *,
    paid_first: bool,
    kind: ModelKind,
    model_id: str,
    params: JobParams,
    cost: int,
    user_id: uuid.UUID,
    email: str | None,
    idempotency_key: str | None,
    request_hash: str,
    realtime: RealtimePublisher | None = None,
    analytics: Tracker | None = None,
) -> Submitted:
    """``submit_job`` with the planned uploads stored first and recorded with the job
    (deleted again if it does not go through). ``paid_first``: the uploads cost a paid
    call (captions), so a replay or a refusal is looked for before any of it."""
    if paid_first:
        answered = await answered_or_affordable(
            uow_factory, user_id=user_id, key=idempotency_key, request_hash=request_hash, cost=cost
        )
        if answered is not None:
            return answered
    return await uploads.run(
        lambda assets: submit_job(
            uow_factory,
            queue,
            clock,
            kind=kind,
            model_id=model_id,
            params=params,
            cost=cost,
            user_id=user_id,
            email=email,
            idempotency_key=idempotency_key,
            request_hash=request_hash,
            uploads=assets,
            realtime=realtime,
            analytics=analytics,
        )
    )


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
    uploads: Sequence[MediaAsset] = (),
    realtime: RealtimePublisher | None = None,
    analytics: Tracker | None = None,
) -> Submitted:
    """Hold ``cost`` and queue a job of any kind, atomically; the one path every
    submission takes.

    ``params`` must be validated and ``cost`` priced by the caller. The new job is
    stored with the key for replays (the edge renders both answers from it).
    ``uploads`` (media the job reads, already in storage) are recorded in the same
    transaction. Nothing is written unless everything is.
    """
    now = clock.now()
    async with uow_factory() as uow:
        replay = await _claim_key(uow, user_id, idempotency_key, request_hash, now)
        if replay is not None:
            return Submitted.replay(replay)
        job = await _hold_and_add(
            uow,
            kind=kind,
            model_id=model_id,
            params=params,
            cost=cost,
            user_id=user_id,
            email=email,
            now=now,
        )
        await _record_with(uow, job, uploads, key=idempotency_key, request_hash=request_hash)
        # sent once this commits (a list append now; no round trip added); if the queue
        # is down the job is still safe in the database and the reconciler wakes a
        # worker for it: the answer stays 202
        uow.after_commit(lambda: wake(queue, job))
        # the open app hears of the job and its hold once committed (a list append now)
        job_updated(uow, realtime, job)
        credits_changed(uow, realtime)
        track(uow, analytics, job_submitted(job))  # no prompt: kind, model, credits
        await uow.commit()
    return Submitted(job=job)


async def _record_with(
    uow: UnitOfWork,
    job: Job,
    uploads: Sequence[MediaAsset],
    *,
    key: str | None,
    request_hash: str,
) -> None:
    """What the job's transaction records with it: the uploads it reads (settled: no
    longer orphans once this commits) and, under the key, the job for replays."""
    for asset in uploads:
        await uow.media.add(asset)
    if uploads:
        await uow.uploads.settle([asset.storage_key for asset in uploads])
    if key is not None:
        await uow.idempotency.add(
            IdempotencyRecord(
                user_id=job.user_id,
                key=key,
                request_hash=request_hash,
                created_at=job.created_at,
                job=job,
            )
        )


async def _claim_key(
    uow: UnitOfWork, user_id: uuid.UUID, key: str | None, request_hash: str, now: datetime
) -> IdempotencyRecord | None:
    """``idempotent``, with the account's lock announced first when there is a key: it
    may then travel with the key's claim (one round trip); the key is still claimed
    first and the account locked after, as without the hint."""
    if key is not None:
        await uow.ledger.will_lock_account(user_id)
    return await idempotent(uow, user_id=user_id, key=key, request_hash=request_hash, now=now)


async def _hold_and_add(
    uow: UnitOfWork,
    *,
    kind: ModelKind,
    model_id: str,
    params: JobParams,
    cost: int,
    user_id: uuid.UUID,
    email: str | None,
    now: datetime,
) -> Job:
    """Lock the account, hold ``cost`` for a new job and add the job, queued at the
    user's tier's priority."""
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
