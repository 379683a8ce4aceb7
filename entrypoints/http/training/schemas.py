"""The photo sets' JSON."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.training.photos import MIN_ACCEPTED_PHOTOS, FaceBox, Photo
from genstudio.core.services.training.photos import PhotoSetSummary, PhotoSetView, PhotoView


class CreatePhotoSetRequest(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True
):
    name: str | None = None


class PhotoSetItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    name: str | None
    photo_count: int
    accepted_count: int
    ready: bool  # enough accepted photos to train on
    created_at: datetime

    @classmethod
    def of(cls, summary: PhotoSetSummary) -> PhotoSetItem:
        s = summary.photo_set
        return cls(
            id=s.id,
            name=s.name,
            photo_count=summary.photo_count,
            accepted_count=summary.accepted_count,
            ready=summary.accepted_count >= MIN_ACCEPTED_PHOTOS,
            created_at=s.created_at,
        )


class PhotoSetList(msgspec.Struct, rename="camel", kw_only=True):
    items: list[PhotoSetItem]


class FaceItem(msgspec.Struct, rename="camel", kw_only=True):
    x: int
    y: int
    width: int
    height: int

    @classmethod
    def of(cls, f: FaceBox) -> FaceItem:
        return cls(x=f.x, y=f.y, width=f.width, height=f.height)


class PhotoChecks(msgspec.Struct, rename="camel", kw_only=True):
    """What was measured (for the app's hints; the verdict is what counts)."""

    width: int  # of the photo as uploaded, orientation applied
    height: int
    sharpness: float
    mean_luminance: float
    faces: list[FaceItem]


class PhotoItem(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    accepted: bool
    reasons: list[str]
    score: int
    url: str | None
    content_type: str | None
    width: int
    height: int
    checks: PhotoChecks | None
    created_at: datetime

    @classmethod
    def of(cls, photo: Photo, url: str | None) -> PhotoItem:
        m = photo.measures
        return cls(
            id=photo.id,
            accepted=photo.verdict.accepted,
            reasons=[r.value for r in photo.verdict.reasons],
            score=photo.verdict.score,
            url=url,
            content_type=photo.content_type,
            width=photo.width,
            height=photo.height,
            checks=None
            if m is None
            else PhotoChecks(
                width=m.width,
                height=m.height,
                sharpness=m.sharpness,
                mean_luminance=m.mean_luminance,
                faces=[FaceItem.of(f) for f in m.faces],
            ),
            created_at=photo.created_at,
        )

    @classmethod
    def of_view(cls, view: PhotoView) -> PhotoItem:
        return cls.of(view.photo, view.url)


class PhotoSetResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    name: str | None
    photo_count: int
    accepted_count: int
    ready: bool
    min_accepted: int
    max_photos: int
    photos: list[PhotoItem]
    created_at: datetime

    @classmethod
    def of(cls, view: PhotoSetView, max_photos: int) -> PhotoSetResponse:
        accepted = sum(1 for v in view.photos if v.photo.verdict.accepted)
        return cls(
            id=view.photo_set.id,
            name=view.photo_set.name,
            photo_count=len(view.photos),
            accepted_count=accepted,
            ready=accepted >= MIN_ACCEPTED_PHOTOS,
            min_accepted=MIN_ACCEPTED_PHOTOS,
            max_photos=max_photos,
            photos=[PhotoItem.of_view(v) for v in view.photos],
            created_at=view.photo_set.created_at,
        )
