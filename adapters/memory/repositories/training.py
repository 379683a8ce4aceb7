"""Photo sets and their photos in memory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.job_params import TrainingParams
from genstudio.core.model.training.models import TrainedModel
from genstudio.core.model.training.photos import Photo, PhotoSet


class InMemoryPhotoSets(_Repo):
    async def lock_owner(self, user_id: uuid.UUID) -> None:
        await self._uow.acquire(("photo_sets", user_id))

    async def add_set(self, photo_set: PhotoSet) -> None:
        self._d.photo_sets[photo_set.id] = photo_set

    async def get_set(self, set_id: uuid.UUID, *, lock: bool = False) -> PhotoSet | None:
        if lock:
            await self._uow.acquire(("photo_set", set_id))
        return self._d.photo_sets.get(set_id)

    async def list_sets(self, user_id: uuid.UUID) -> list[PhotoSet]:
        mine = [s for s in self._d.photo_sets.values() if s.user_id == user_id]
        return sorted(mine, key=lambda s: (s.created_at, s.id), reverse=True)

    async def count_sets(self, user_id: uuid.UUID) -> int:
        return sum(1 for s in self._d.photo_sets.values() if s.user_id == user_id)

    async def delete_set(self, set_id: uuid.UUID) -> None:
        self._d.photo_sets.pop(set_id, None)
        for photo_id in [p.id for p in self._d.photos.values() if p.set_id == set_id]:
            del self._d.photos[photo_id]

    async def in_use_by_training(self, set_id: uuid.UUID) -> bool:
        if any(m.photo_set_id == set_id for m in self._d.trained_models.values()):
            return True
        return any(
            isinstance(j.params, TrainingParams)
            and j.params.photo_set_id == set_id
            and not j.status.terminal
            for j in self._d.jobs.values()
        )

    async def add_photo(self, photo: Photo) -> None:
        if photo.set_id not in self._d.photo_sets:
            raise NotFound(f"photo set {photo.set_id} does not exist")
        self._d.photos[photo.id] = photo

    async def get_photo(self, photo_id: uuid.UUID) -> Photo | None:
        return self._d.photos.get(photo_id)

    async def list_photos(self, set_id: uuid.UUID) -> list[Photo]:
        mine = [p for p in self._d.photos.values() if p.set_id == set_id]
        return sorted(mine, key=lambda p: (p.created_at, p.id))

    async def photo_counts(self, set_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
        wanted = set(set_ids)
        counts: dict[uuid.UUID, tuple[int, int]] = {}
        for p in self._d.photos.values():
            if p.set_id in wanted:
                total, accepted = counts.get(p.set_id, (0, 0))
                counts[p.set_id] = (total + 1, accepted + int(p.verdict.accepted))
        return counts

    async def delete_photo(self, photo_id: uuid.UUID) -> None:
        self._d.photos.pop(photo_id, None)


class InMemoryTrainedModels(_Repo):
    async def add(self, model: TrainedModel) -> None:
        if model.user_id not in self._d.profiles:
            raise NotFound(f"profile {model.user_id} does not exist")
        if model.job_id is not None and any(
            m.job_id == model.job_id for m in self._d.trained_models.values()
        ):
            raise DuplicateEntry(f"job {model.job_id} already made a model")
        self._d.trained_models[model.id] = model

    async def get(self, model_id: uuid.UUID, *, lock: bool = False) -> TrainedModel | None:
        if lock:
            await self._uow.acquire(("trained_model", model_id))
        return self._d.trained_models.get(model_id)

    async def for_job(self, job_id: uuid.UUID) -> TrainedModel | None:
        return next((m for m in self._d.trained_models.values() if m.job_id == job_id), None)

    async def list_for_user(self, user_id: uuid.UUID) -> list[TrainedModel]:
        mine = [m for m in self._d.trained_models.values() if m.user_id == user_id]
        return sorted(mine, key=lambda m: (m.created_at, m.id), reverse=True)

    async def update(self, model: TrainedModel) -> None:
        if model.id not in self._d.trained_models:
            raise NotFound(f"trained model {model.id} does not exist")
        self._d.trained_models[model.id] = model

    async def delete(self, model_id: uuid.UUID) -> None:
        self._d.trained_models.pop(model_id, None)

    async def keeping_set(self, set_id: uuid.UUID) -> int:
        return sum(1 for m in self._d.trained_models.values() if m.photo_set_id == set_id)
