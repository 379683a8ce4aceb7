"""Training: photo sets and their photos (and, appended by the training work, the
trained models)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from genstudio.core.model.training.models import TrainedModel
from genstudio.core.model.training.photos import Photo, PhotoSet


class PhotoSetRepository(Protocol):
    """A user's photo sets and the photos in them. Reads are not scoped by user: the
    use cases check ownership (another user's set reads as missing)."""

    async def lock_owner(self, user_id: uuid.UUID) -> None:
        """Serialise, until the transaction ends, the units that create sets for this
        user, so the count of sets they check cannot be overtaken."""
        ...

    async def add_set(self, photo_set: PhotoSet) -> None: ...

    async def get_set(self, set_id: uuid.UUID, *, lock: bool = False) -> PhotoSet | None:
        """``lock=True`` holds the set's row until the transaction ends: uploads to one
        set run one after the other, so its photo cap and duplicate check hold."""
        ...

    async def list_sets(self, user_id: uuid.UUID) -> list[PhotoSet]:
        """The user's sets, newest first."""
        ...

    async def count_sets(self, user_id: uuid.UUID) -> int: ...

    async def delete_set(self, set_id: uuid.UUID) -> None:
        """Delete the set and its photos' rows (not their files: the caller's, after
        commit). A missing set is not an error."""
        ...

    async def in_use_by_training(self, set_id: uuid.UUID) -> bool:
        """True while a training job that uses the set is queued, dispatched or
        running, or a trained model keeps it (its photos must stay)."""
        ...

    async def add_photo(self, photo: Photo) -> None: ...

    async def get_photo(self, photo_id: uuid.UUID) -> Photo | None: ...

    async def list_photos(self, set_id: uuid.UUID) -> list[Photo]:
        """The set's photos in upload order (created_at, then id)."""
        ...

    async def photo_counts(self, set_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[int, int]]:
        """(photos, accepted photos) of each of ``set_ids``; a set without photos, or
        missing, is left out."""
        ...

    async def delete_photo(self, photo_id: uuid.UUID) -> None:
        """A missing photo is not an error."""
        ...


class TrainedModelRepository(Protocol):
    """Users' trained models (issue #16). Reads are not scoped by user: the use cases
    check ownership (another user's model reads as missing)."""

    async def add(self, model: TrainedModel) -> None:
        """Raises DuplicateEntry when a model of the same job exists already."""
        ...

    async def get(self, model_id: uuid.UUID, *, lock: bool = False) -> TrainedModel | None:
        """``lock=True`` holds the row until the transaction ends (rename, delete)."""
        ...

    async def for_job(self, job_id: uuid.UUID) -> TrainedModel | None:
        """The model a training job made, if it succeeded."""
        ...

    async def list_for_user(self, user_id: uuid.UUID) -> list[TrainedModel]:
        """The user's models, newest first."""
        ...

    async def update(self, model: TrainedModel) -> None:
        """Write the model's name and status. Raises NotFound when it is gone."""
        ...

    async def delete(self, model_id: uuid.UUID) -> None:
        """Delete the row (not its files: the caller's, after commit). A missing model
        is not an error."""
        ...

    async def keeping_set(self, set_id: uuid.UUID) -> int:
        """How many models keep the photo set (were trained from it)."""
        ...
