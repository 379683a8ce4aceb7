"""Trained models and training jobs as the user sees them: a training's progress,
the user's models (list, rename, delete), and a model applied to an image job.

Another user's model or training job reads as missing (404), never as forbidden.
Deleting a model deletes its weights, and the photo set it was trained from when
nothing else keeps that set (no other model, no queued or running training job):
the rows go and the files are expected in one transaction, then the files are
deleted and settled (what this process could not delete, the reconciler's sweep does).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.training.models import TrainedModel, TrainingProgress, training_progress
from genstudio.core.services.generation.uploads import _discard_uploads
from genstudio.ports.clock import Clock
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory


class SignedSample(msgspec.Struct, frozen=True, kw_only=True):
    media_id: uuid.UUID
    url: str
    width: int
    height: int


class TrainingView(msgspec.Struct, frozen=True, kw_only=True):
    job: Job
    progress: TrainingProgress
    retried: bool  # an earlier attempt failed (its events say so)
    samples: list[SignedSample]  # when it succeeded
    model: TrainedModel | None  # what it made, while it exists
    url_expires_at: datetime


class ModelView(msgspec.Struct, frozen=True, kw_only=True):
    model: TrainedModel
    thumbnail_url: str | None


def _own_model(model: TrainedModel | None, user_id: uuid.UUID) -> TrainedModel:
    if model is None or model.user_id != user_id:
        raise NotFound("no such model", field="id")
    return model


async def training_view(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    job_id: uuid.UUID,
    url_ttl: int,
) -> TrainingView:
    """The user's training job: step/total, percent, ETA, whether it was retried, and
    its sample images (signed after the unit of work) once it succeeded. Raises
    NotFound (``job_id``) for another user's job or a job of another kind."""
    async with uow_factory() as uow:
        job = await uow.jobs.get(job_id)
        if job is None or job.user_id != user_id or job.kind is not ModelKind.TRAINING:
            raise NotFound(f"no training job {job_id}", field="job_id")
        events = await uow.job_events.list_for_job(job_id)
        media = await uow.media.list_for_job(job_id) if job.asset_ids else []
        model = await uow.trained_models.for_job(job_id)
    now = clock.now()
    samples = [
        SignedSample(
            media_id=m.id,
            url=await storage.signed_url(m.storage_key, url_ttl),
            width=m.width,
            height=m.height,
        )
        for m in media
    ]
    return TrainingView(
        job=job,
        progress=training_progress(job, now),
        retried=any(e.kind is JobEventKind.RETRYING for e in events),
        samples=samples,
        model=model,
        url_expires_at=now + timedelta(seconds=url_ttl),
    )


async def training_events(
    uow_factory: UnitOfWorkFactory, *, user_id: uuid.UUID, job_id: uuid.UUID
) -> list[JobEvent]:
    async with uow_factory() as uow:
        job = await uow.jobs.get(job_id)
        if job is None or job.user_id != user_id or job.kind is not ModelKind.TRAINING:
            raise NotFound(f"no training job {job_id}", field="job_id")
        return await uow.job_events.list_for_job(job_id)


async def list_models(
    uow_factory: UnitOfWorkFactory, storage: MediaStorage, *, user_id: uuid.UUID, url_ttl: int
) -> list[ModelView]:
    """The user's models, newest first, each with a signed thumbnail URL."""
    async with uow_factory() as uow:
        models = await uow.trained_models.list_for_user(user_id)
    return [await _viewed(storage, m, url_ttl) for m in models]


async def _viewed(storage: MediaStorage, model: TrainedModel, url_ttl: int) -> ModelView:
    thumbnail = model.thumbnail_key
    url = None if thumbnail is None else await storage.signed_url(thumbnail, url_ttl)
    return ModelView(model=model, thumbnail_url=url)


async def rename_model(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    model_id: uuid.UUID,
    name: str,
    url_ttl: int,
) -> ModelView:
    """Raises NotFound (``id``) and InvalidInput (``name``)."""
    async with uow_factory() as uow:
        model = _own_model(await uow.trained_models.get(model_id, lock=True), user_id)
        model = model.renamed(name, clock.now())
        await uow.trained_models.update(model)
        await uow.commit()
    return await _viewed(storage, model, url_ttl)


async def delete_model(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    user_id: uuid.UUID,
    model_id: uuid.UUID,
) -> None:
    """Delete the model and its weights, and its photo set with the photos when no
    other model and no queued or running training job keeps the set. Raises NotFound.
    """
    async with uow_factory() as uow:
        model = _own_model(await uow.trained_models.get(model_id, lock=True), user_id)
        await uow.trained_models.delete(model.id)
        keys = [model.weights_key]
        if model.photo_set_id is not None:
            keys += await _release_set(uow, model.photo_set_id)
        now = clock.now()
        for key in keys:  # expected until deleted: the sweep finishes what we cannot
            await uow.uploads.expect(key, user_id, now)
        await uow.commit()
    await _discard_uploads(uow_factory, storage, keys)


async def _release_set(uow: UnitOfWork, set_id: uuid.UUID) -> list[str]:
    """Delete the set (rows) when nothing else keeps it; the keys of its photos' files.
    The set's row is locked first, as the photo-set use cases lock it."""
    photo_set = await uow.photo_sets.get_set(set_id, lock=True)
    if photo_set is None or await uow.photo_sets.in_use_by_training(set_id):
        return []
    photos = await uow.photo_sets.list_photos(set_id)
    await uow.photo_sets.delete_set(set_id)
    return [p.storage_key for p in photos if p.storage_key]


async def with_lora(
    uow_factory: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    model_id: str,
    params: ImageParams,
) -> ImageParams:
    """The image params with the user's own model's weights (``lora_key``) when they
    name one (``lora_id``). Free, and made before anything is held: raises NotFound
    (``lora_id``) for a model that is not the user's, and InvalidInput (``lora_id``)
    for one trained for another base model than ``model_id``."""
    if params.lora_id is None:
        if params.lora_key is not None:
            raise InvalidInput("lora_key is set by the server", field="lora_id")
        return params
    async with uow_factory() as uow:
        model = await uow.trained_models.get(params.lora_id)
    if model is None or model.user_id != user_id:
        raise NotFound(f"no model {params.lora_id}", field="lora_id")
    if model.base_model != model_id:
        raise InvalidInput(
            f"this model was trained for {model.base_model}, not {model_id}", field="lora_id"
        )
    return msgspec.structs.replace(params, lora_key=model.weights_key)
