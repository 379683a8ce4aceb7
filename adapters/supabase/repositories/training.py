"""Photo sets and their photos in Postgres (migration 0100)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, text

from adapters.supabase import tables as t
from adapters.supabase.compiled import Compiled
from adapters.supabase.repositories.rows import Row, _json, _params, _Repository, _utc
from core.model.training.photos import Photo, PhotoMeasures, PhotoReason, PhotoSet, Verdict

_S = t.photo_sets.c
_P = t.training_photos.c
_LOCK_OWNER = text("SELECT pg_advisory_xact_lock(hashtextextended('photo-sets:' || :u, 0))")
_ADD_SET = Compiled(t.photo_sets.insert().values(_params(c.name for c in t.photo_sets.c)))
_ADD_PHOTO = Compiled(
    t.training_photos.insert().values(_params(c.name for c in t.training_photos.c))
)
_MEASURES = msgspec.json.Decoder(PhotoMeasures)


def _set(row: Row) -> PhotoSet:
    return PhotoSet(
        id=row["id"], user_id=row["user_id"], name=row["name"], created_at=_utc(row["created_at"])
    )


def _photo(row: Row) -> Photo:
    measures = row["measures"]
    return Photo(
        id=row["id"],
        set_id=row["set_id"],
        user_id=row["user_id"],
        storage_key=row["storage_key"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        byte_size=row["byte_size"],
        # jsonb comes back decoded; through msgspec again for the Struct and its types
        measures=None if measures is None else _MEASURES.decode(msgspec.json.encode(measures)),
        verdict=Verdict(
            accepted=row["accepted"],
            reasons=tuple(PhotoReason(r) for r in row["reasons"]),
            score=row["score"],
        ),
        created_at=_utc(row["created_at"]),
    )


class SqlPhotoSets(_Repository):
    async def lock_owner(self, user_id: uuid.UUID) -> None:
        await self._conn.execute(_LOCK_OWNER, {"u": str(user_id)})

    async def add_set(self, photo_set: PhotoSet) -> None:
        self._sql.defer(
            _ADD_SET,
            {
                "id": photo_set.id,
                "user_id": photo_set.user_id,
                "name": photo_set.name,
                "created_at": photo_set.created_at,
            },
        )

    async def get_set(self, set_id: uuid.UUID, *, lock: bool = False) -> PhotoSet | None:
        query = select(t.photo_sets).where(_S.id == set_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _set(row)

    async def list_sets(self, user_id: uuid.UUID) -> list[PhotoSet]:
        result = await self._conn.execute(
            select(t.photo_sets)
            .where(_S.user_id == user_id)
            .order_by(_S.created_at.desc(), _S.id.desc())
        )
        return [_set(row) for row in result.mappings()]

    async def count_sets(self, user_id: uuid.UUID) -> int:
        result = await self._conn.execute(
            select(func.count()).select_from(t.photo_sets).where(_S.user_id == user_id)
        )
        return int(result.scalar_one())

    async def delete_set(self, set_id: uuid.UUID) -> None:
        # the photos' rows go with it (ON DELETE CASCADE)
        await self._conn.execute(delete(t.photo_sets).where(_S.id == set_id))

    async def in_use_by_training(self, set_id: uuid.UUID) -> bool:
        # training jobs (issue #16, the training half) answer this from their table
        return False

    async def add_photo(self, photo: Photo) -> None:
        values: dict[str, Any] = {
            "id": photo.id,
            "set_id": photo.set_id,
            "user_id": photo.user_id,
            "storage_key": photo.storage_key,
            "content_type": photo.content_type,
            "width": photo.width,
            "height": photo.height,
            "byte_size": photo.byte_size,
            "measures": None if photo.measures is None else _json(photo.measures),
            "accepted": photo.verdict.accepted,
            "reasons": [r.value for r in photo.verdict.reasons],
            "score": photo.verdict.score,
            "created_at": photo.created_at,
        }
        self._sql.defer(_ADD_PHOTO, values)

    async def get_photo(self, photo_id: uuid.UUID) -> Photo | None:
        result = await self._conn.execute(select(t.training_photos).where(_P.id == photo_id))
        row = result.mappings().one_or_none()
        return None if row is None else _photo(row)

    async def list_photos(self, set_id: uuid.UUID) -> list[Photo]:
        result = await self._conn.execute(
            select(t.training_photos).where(_P.set_id == set_id).order_by(_P.created_at, _P.id)
        )
        return [_photo(row) for row in result.mappings()]

    async def photo_counts(self, set_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
        if not set_ids:
            return {}
        result = await self._conn.execute(
            select(_P.set_id, func.count(), func.count().filter(_P.accepted))
            .where(_P.set_id.in_(list(set_ids)))
            .group_by(_P.set_id)
        )
        return {set_id: (int(total), int(ok)) for set_id, total, ok in result}

    async def delete_photo(self, photo_id: uuid.UUID) -> None:
        await self._conn.execute(delete(t.training_photos).where(_P.id == photo_id))
