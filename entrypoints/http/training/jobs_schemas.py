"""Training jobs' and trained models' JSON (issue #16)."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.job_params import TrainingParams
from genstudio.core.model.jobs import Job
from genstudio.core.model.training.models import TrainedModel, training_progress
from genstudio.core.services.training.models import ModelView, TrainingView


class TrainingRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    photo_set_id: uuid.UUID
    steps: int
    trigger_word: str
    name: str
    base_model: str | None = None  # default: the training model's first base
    model: str | None = None  # the catalog's training model (default: flux-lora)
    seed: int | None = None


class SampleItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    url: str
    width: int
    height: int


class ErrorItem(msgspec.Struct, rename="camel", kw_only=True):
    reason: str
    message: str


class TrainingResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    status: str
    model: str  # the training model
    name: str
    trigger_word: str
    base_model: str
    photo_set_id: uuid.UUID
    photo_count: int
    step: int
    total: int
    percent: int
    eta_seconds: int | None
    attempts: int
    retried: bool
    cost: int
    error: ErrorItem | None
    samples: list[SampleItem]
    samples_expire_at: datetime | None
    trained_model_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, job: Job, now: datetime, view: TrainingView | None = None) -> TrainingResponse:
        """The job (as submitted, or as ``view`` reads it now)."""
        p = job.params
        assert isinstance(p, TrainingParams)
        progress = view.progress if view is not None else training_progress(job, now)
        return cls(
            id=job.id,
            status=job.status.value,
            model=job.model_id,
            name=p.name,
            trigger_word=p.trigger_word,
            base_model=p.base_model,
            photo_set_id=p.photo_set_id,
            photo_count=len(p.photo_keys),
            step=progress.step,
            total=progress.total,
            percent=progress.percent,
            eta_seconds=progress.eta_seconds,
            attempts=job.attempts,
            retried=view.retried if view is not None else False,
            cost=job.cost,
            error=None
            if job.error is None
            else ErrorItem(reason=job.error.reason.value, message=job.error.message),
            samples=[]
            if view is None
            else [
                SampleItem(id=s.media_id, url=s.url, width=s.width, height=s.height)
                for s in view.samples
            ],
            samples_expire_at=view.url_expires_at if view is not None and view.samples else None,
            trained_model_id=view.model.id if view is not None and view.model else None,
            created_at=job.created_at,
            updated_at=job.updated_at,
        )


class EventItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    message: str
    created_at: datetime


class EventList(msgspec.Struct, kw_only=True):
    items: list[EventItem]


class TrainedModelItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    name: str
    status: str
    trigger_word: str
    base_model: str
    thumbnail_url: str | None
    photo_set_id: uuid.UUID | None
    job_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ModelView) -> TrainedModelItem:
        m: TrainedModel = view.model
        return cls(
            id=m.id,
            name=m.name,
            status=m.status.value,
            trigger_word=m.trigger_word,
            base_model=m.base_model,
            thumbnail_url=view.thumbnail_url,
            photo_set_id=m.photo_set_id,
            job_id=m.job_id,
            created_at=m.created_at,
            updated_at=m.updated_at,
        )


class TrainedModelList(msgspec.Struct, kw_only=True):
    items: list[TrainedModelItem]


class RenameModelRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    name: str
