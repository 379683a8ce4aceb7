"""Photo sets and their photos in Postgres (migration 0100)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError

from genstudio.adapters.supabase import tables as t
from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import Row, _json, _params, _Repository, _utc
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.training.models import TrainedModel, TrainedModelStatus
from genstudio.core.model.training.photos import (
    Photo,
    PhotoMeasures,
    PhotoReason,
    PhotoSet,
    Verdict,
)

_S = t.photo_sets.c
_P = t.training_photos.c
_LOCK_OWNER = text("SELECT pg_advisory_xact_lock(hashtextextended('photo-sets:' || :u, 0))")
_ADD_SET = Compiled(t.photo_sets.insert().values(_params(c.name for c in t.photo_sets.c)))
_ADD_PHOTO = Compiled(
    t.training_photos.insert().values(_params(c.name for c in t.training_photos.c))
)
_MEASURES = msgspec.json.Decoder(PhotoMeasures)
_M = t.trained_models.c
# a queued or running training job of the set (index jobs_training_photo_set), or a
# model trained from it (migration 0110)
_IN_USE = text(
    "SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = 'training'"
    " AND status IN ('queued', 'dispatched', 'running') AND params->>'photo_set_id' = :s)"
    " OR EXISTS (SELECT 1 FROM trained_models WHERE photo_set_id = :u)"
)


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
        result = await self._conn.execute(_IN_USE, {"s": str(set_id), "u": set_id})
        return bool(result.scalar_one())

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


def _model(row: Row) -> TrainedModel:
    return TrainedModel(
        id=row["id"],
        user_id=row["user_id"],
        name=row["name"],
        trigger_word=row["trigger_word"],
        base_model=row["base_model"],
        weights_key=row["weights_key"],
        weights_bytes=row["weights_bytes"],
        status=TrainedModelStatus(row["status"]),
        thumbnail_key=row["thumbnail_key"],
        photo_set_id=row["photo_set_id"],
        job_id=row["job_id"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


class SqlTrainedModels(_Repository):
    """Trained models (migration 0110)."""

    async def add(self, model: TrainedModel) -> None:
        values = {f: getattr(model, f) for f in msgspec.structs.asdict(model)}
        values["status"] = model.status.value
        try:
            await self._conn.execute(t.trained_models.insert().values(values))
        except IntegrityError as exc:
            if "unique" in str(exc.orig).lower():
                raise DuplicateEntry(f"job {model.job_id} already made a model") from None
            raise NotFound(f"the model's owner, set or job does not exist: {exc.orig}") from None

    async def get(self, model_id: uuid.UUID, *, lock: bool = False) -> TrainedModel | None:
        query = select(t.trained_models).where(_M.id == model_id)
        if lock:
            query = query.with_for_update()
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return None if row is None else _model(row)

    async def for_job(self, job_id: uuid.UUID) -> TrainedModel | None:
        result = await self._conn.execute(select(t.trained_models).where(_M.job_id == job_id))
        row = result.mappings().one_or_none()
        return None if row is None else _model(row)

    async def list_for_user(self, user_id: uuid.UUID) -> list[TrainedModel]:
        result = await self._conn.execute(
            select(t.trained_models)
            .where(_M.user_id == user_id)
            .order_by(_M.created_at.desc(), _M.id.desc())
        )
        return [_model(row) for row in result.mappings()]

    async def update(self, model: TrainedModel) -> None:
        result = await self._conn.execute(
            update(t.trained_models)
            .where(_M.id == model.id)
            .values(name=model.name, status=model.status.value, updated_at=model.updated_at)
        )
        if result.rowcount == 0:
            raise NotFound(f"trained model {model.id} does not exist")

    async def delete(self, model_id: uuid.UUID) -> None:
        await self._conn.execute(delete(t.trained_models).where(_M.id == model_id))

    async def keeping_set(self, set_id: uuid.UUID) -> int:
        result = await self._conn.execute(
            select(func.count()).select_from(t.trained_models).where(_M.photo_set_id == set_id)
        )
        return int(result.scalar_one())
