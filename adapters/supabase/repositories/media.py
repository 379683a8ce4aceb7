"""Media assets and upload intents in Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    delete,
    literal,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.sql import Subquery

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import Row, _params, _Repository, _utc
from genstudio.core.model.media import MediaAsset, MediaKind

# --- media ------------------------------------------------------------------------------


def _media_relation() -> Subquery:
    """Images and videos as one relation shaped like MediaAsset."""
    shared = [
        *("id", "user_id", "storage_key", "content_type", "width", "height"),
        *("byte_size", "prompt", "model_id", "job_id", "is_public", "created_at", "caption"),
    ]
    images = select(
        *(t.images.c[name] for name in shared),
        literal(MediaKind.IMAGE.value).label("kind"),
        null().label("duration_seconds"),
        null().label("thumbnail_key"),
    )
    videos = select(
        *(t.videos.c[name] for name in shared),
        literal(MediaKind.VIDEO.value).label("kind"),
        t.videos.c.duration_seconds,
        t.videos.c.thumbnail_key,
    )
    return union_all(images, videos).subquery("media")


_MEDIA = _media_relation()


def _asset(row: Row) -> MediaAsset:
    return MediaAsset(
        id=row["id"],
        user_id=row["user_id"],
        kind=MediaKind(row["kind"]),
        storage_key=row["storage_key"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        byte_size=row["byte_size"],
        prompt=row["prompt"],
        model_id=row["model_id"],
        job_id=row["job_id"],
        created_at=_utc(row["created_at"]),
        is_public=row["is_public"],
        duration_seconds=row["duration_seconds"],
        thumbnail_key=row["thumbnail_key"],
        caption=row["caption"],
    )


_ADD_IMAGE = Compiled(insert(t.images).values(_params(c.name for c in t.images.c)))
_ADD_VIDEO = Compiled(insert(t.videos).values(_params(c.name for c in t.videos.c)))


class SqlMedia(_Repository):
    async def add(self, asset: MediaAsset) -> None:
        values: dict[str, Any] = {
            "id": asset.id,
            "user_id": asset.user_id,
            "storage_key": asset.storage_key,
            "content_type": asset.content_type,
            "width": asset.width,
            "height": asset.height,
            "byte_size": asset.byte_size,
            "prompt": asset.prompt,
            "model_id": asset.model_id,
            "job_id": asset.job_id,
            "is_public": asset.is_public,
            "created_at": asset.created_at,
            "caption": asset.caption,
        }
        if asset.kind is MediaKind.VIDEO:
            values["duration_seconds"] = asset.duration_seconds
            values["thumbnail_key"] = asset.thumbnail_key
            self._sql.defer(_ADD_VIDEO, values)
        else:
            self._sql.defer(_ADD_IMAGE, values)

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None:
        result = await self._conn.execute(select(_MEDIA).where(_MEDIA.c.id == asset_id))
        row = result.mappings().one_or_none()
        return None if row is None else _asset(row)

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]:
        result = await self._conn.execute(
            select(_MEDIA)
            .where(_MEDIA.c.job_id == job_id)
            .order_by(_MEDIA.c.created_at, _MEDIA.c.id)
        )
        return [_asset(row) for row in result.mappings()]


# --- upload intents ---------------------------------------------------------------------

_U = t.upload_intents.c
_EXPECT_UPLOAD = Compiled(
    insert(t.upload_intents)
    .values(_params(["storage_key", "user_id", "created_at"]))
    .on_conflict_do_nothing(index_elements=["storage_key"])
)


class SqlUploads(_Repository):
    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        self._sql.defer(
            _EXPECT_UPLOAD, {"storage_key": storage_key, "user_id": user_id, "created_at": at}
        )

    async def settle(self, storage_keys: Sequence[str]) -> None:
        if storage_keys:
            await self._conn.execute(
                delete(t.upload_intents).where(_U.storage_key.in_(list(storage_keys)))
            )

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        result = await self._conn.execute(
            select(_U.storage_key)
            .where(_U.created_at < before)
            .order_by(_U.created_at, _U.storage_key)
            .limit(limit)
        )
        return [key for (key,) in result]
