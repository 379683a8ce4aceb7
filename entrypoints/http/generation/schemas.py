"""Generation's JSON: requests, jobs, assets, events (camelCase)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec

from genstudio.core.model.job_params import (
    EditParams,
    ImageParams,
    JobParams,
    TrainingParams,
    VideoParams,
)
from genstudio.core.model.jobs import Job
from genstudio.core.model.media import MediaAsset


class ImageRequest(msgspec.Struct, forbid_unknown_fields=True, rename="camel", kw_only=True):
    model: str
    prompt: str
    negative_prompt: str = ""
    width: int = 1024
    height: int = 1024
    count: int = 1
    seed: int | None = None
    # rewrite a short prompt into a detailed one first (the user's words are kept)
    enhance: bool = False
    # one of the user's own trained models (issue #16), applied at lora_scale (0-2)
    lora_id: uuid.UUID | None = None
    lora_scale: float = 1.0

    def to_params(self) -> ImageParams:
        return ImageParams(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt,
            width=self.width,
            height=self.height,
            count=self.count,
            seed=self.seed,
            lora_id=self.lora_id,
            lora_scale=self.lora_scale,
        )


class AssetItem(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    """A result. Videos add ``durationSeconds`` and ``thumbnailUrl`` (their poster frame,
    signed like ``url``); images leave both out."""

    id: uuid.UUID
    kind: str
    content_type: str
    width: int
    height: int
    byte_size: int
    url: str
    url_expires_at: datetime
    duration_seconds: float | None = None
    thumbnail_url: str | None = None
    caption: str | None = None  # what a vision model saw, when one described it


class JobErrorItem(msgspec.Struct):
    reason: str
    message: str


class ImageParamsItem(msgspec.Struct, rename="camel", kw_only=True, omit_defaults=True):
    prompt: str  # what was rendered: the enhanced prompt when enhancement was asked
    negative_prompt: str
    width: int
    height: int
    count: int
    seed: int | None
    original_prompt: str | None = None  # present only when the prompt was enhanced
    lora_id: uuid.UUID | None = None  # the user's own model, when one was applied
    # None (left out) without a model: not 1.0, which omit_defaults would drop from a
    # fresh job's params but not from one read back from the database (a float default
    # is told apart by identity), and a replay must render the same bytes
    lora_scale: float | None = None


class TrainingParamsItem(msgspec.Struct, rename="camel", kw_only=True):
    photo_set_id: uuid.UUID
    photo_count: int
    steps: int
    trigger_word: str
    base_model: str
    name: str
    seed: int | None


class EditParamsItem(msgspec.Struct, rename="camel", kw_only=True):
    prompt: str
    negative_prompt: str
    width: int
    height: int
    seed: int | None
    strength: float


class VideoParamsItem(msgspec.Struct, rename="camel", kw_only=True):
    input_type: str
    prompt: str
    negative_prompt: str
    duration_seconds: int
    resolution: str
    width: int
    height: int
    fps: int
    seed: int | None


def params_item(
    p: JobParams,
) -> ImageParamsItem | EditParamsItem | VideoParamsItem | TrainingParamsItem:
    """A job's parameters as the app sees them (uploads' storage keys stay inside)."""
    if isinstance(p, TrainingParams):
        return TrainingParamsItem(
            photo_set_id=p.photo_set_id,
            photo_count=len(p.photo_keys),
            steps=p.steps,
            trigger_word=p.trigger_word,
            base_model=p.base_model,
            name=p.name,
            seed=p.seed,
        )
    if isinstance(p, EditParams):
        return EditParamsItem(
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            width=p.width,
            height=p.height,
            seed=p.seed,
            strength=p.strength,
        )
    if isinstance(p, VideoParams):
        width, height = p.size
        return VideoParamsItem(
            input_type=p.input_type.value,
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            duration_seconds=p.duration_seconds,
            resolution=p.resolution,
            width=width,
            height=height,
            fps=p.fps,
            seed=p.seed,
        )
    return ImageParamsItem(
        prompt=p.prompt,
        negative_prompt=p.negative_prompt,
        width=p.width,
        height=p.height,
        count=p.count,
        seed=p.seed,
        original_prompt=p.original_prompt,
        lora_id=p.lora_id,
        lora_scale=None if p.lora_id is None else p.lora_scale,
    )


class JobResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    model: str
    status: str
    progress: int
    cost: int
    attempts: int
    provider: str | None
    error: JobErrorItem | None
    # by ``kind``: ImageParamsItem, EditParamsItem or VideoParamsItem, as a plain object
    # (an untagged union of Structs has no OpenAPI schema, and a tag would change the
    # image shape the app already reads)
    params: dict[str, Any]
    assets: list[AssetItem]
    created_at: datetime
    updated_at: datetime
    # a failed attempt waits until then before the next one (null when none is pending)
    next_attempt_at: datetime | None = None
    dead_lettered: bool = False
    rerun_of: uuid.UUID | None = None

    @classmethod
    def of(cls, job: Job, assets: list[AssetItem] | None = None) -> JobResponse:
        return cls(
            id=job.id,
            kind=job.kind.value,
            model=job.model_id,
            status=job.status.value,
            progress=job.progress,
            cost=job.cost,
            attempts=job.attempts,
            provider=job.provider,
            error=JobErrorItem(job.error.reason.value, job.error.message) if job.error else None,
            params=msgspec.to_builtins(params_item(job.params)),
            assets=assets or [],
            created_at=job.created_at,
            updated_at=job.updated_at,
            next_attempt_at=job.next_attempt_at if job.status.value == "queued" else None,
            dead_lettered=job.dead_lettered_at is not None,
            rerun_of=job.rerun_of,
        )


def asset_item(
    asset: MediaAsset, url: str, expires_at: datetime, thumbnail_url: str | None = None
) -> AssetItem:
    return AssetItem(
        id=asset.id,
        kind=asset.kind.value,
        content_type=asset.content_type,
        width=asset.width,
        height=asset.height,
        byte_size=asset.byte_size,
        url=url,
        url_expires_at=expires_at,
        duration_seconds=asset.duration_seconds,
        thumbnail_url=thumbnail_url,
        caption=asset.caption,
    )


class JobEventItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    message: str
    created_at: datetime


class JobEventList(msgspec.Struct):
    items: list[JobEventItem]
