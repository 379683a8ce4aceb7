"""Photo sets and their photos in memory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from adapters.memory.store import _Repo
from core.model.errors import NotFound
from core.model.training.photos import Photo, PhotoSet


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
        # training jobs (issue #16, the training half) answer this once they exist
        return False

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
