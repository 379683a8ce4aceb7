"""Photo sets: creating them, checking each uploaded photo, deleting, and reading them.

Uploading a photo is free but bounded (photos per set, sets per user). A photo is
checked (``PhotoAnalyser``: off the event loop, outside any transaction) before its
set is locked; its normalised copy is stored under an upload intent
(``uow.uploads.expect``) first and settled in the transaction that records it, so a
failed upload never leaves a file behind: what the request could not delete, the
reconciler's ``sweep_orphaned_uploads`` does. Deleting works the same way backwards:
the rows go and the files are expected in one transaction, then the files are deleted
and settled.

A photo that decodes passes moderation (surface ``training_photo``, issue #19) before it
is stored: a refused one is a 422 ``content_refused`` naming ``photo``, with a strike,
and nothing of it is kept (no file, no row: unlike an unusable photo, it is not shown).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import msgspec

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.ids import new_id
from genstudio.core.model.moderation import Surface, content_reference
from genstudio.core.model.training.photos import (
    Photo,
    PhotoLimits,
    PhotoReason,
    PhotoSet,
    PhotoSetFull,
    PhotoSetInUse,
    PhotoThresholds,
    TooManyPhotoSets,
    check_set_name,
    judge,
    photo_key,
    unmeasured,
)
from genstudio.core.services.generation.uploads import _discard_uploads
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.clock import Clock
from genstudio.ports.repositories.training import PhotoSetRepository
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory
from genstudio.ports.vision import AnalysedPhoto, PhotoAnalyser


class PhotoView(msgspec.Struct, frozen=True, kw_only=True):
    photo: Photo
    url: str | None  # signed, expiring; None when nothing could be read


class PhotoSetView(msgspec.Struct, frozen=True, kw_only=True):
    photo_set: PhotoSet
    photos: list[PhotoView]


class PhotoSetSummary(msgspec.Struct, frozen=True, kw_only=True):
    photo_set: PhotoSet
    photo_count: int
    accepted_count: int


class PhotoSets:
    """The photo-set use cases over their ports (one per process, from the container)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        storage: MediaStorage,
        analyser: PhotoAnalyser,
        clock: Clock,
        *,
        thresholds: PhotoThresholds | None = None,
        limits: PhotoLimits | None = None,
        url_ttl: int = 3600,
        moderation: Moderation | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.storage = storage
        self.analyser = analyser
        self.clock = clock
        self.thresholds = thresholds or PhotoThresholds()
        self.limits = limits or PhotoLimits()
        self.url_ttl = url_ttl
        self.moderation = moderation  # None: photos are not moderated

    async def create_set(
        self, user_id: uuid.UUID, name: str | None, *, email: str | None = None
    ) -> PhotoSet:
        """Raises InvalidInput (``name``) and TooManyPhotoSets."""
        try:
            name = check_set_name(name)
        except ValueError as exc:
            raise InvalidInput(str(exc), field="name") from None
        photo_set = PhotoSet(id=new_id(), user_id=user_id, name=name, created_at=self.clock.now())
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            await uow.photo_sets.lock_owner(user_id)
            if await uow.photo_sets.count_sets(user_id) >= self.limits.max_sets_per_user:
                raise TooManyPhotoSets(
                    f"you have {self.limits.max_sets_per_user} photo sets, the most allowed;"
                    " delete one first"
                )
            await uow.photo_sets.add_set(photo_set)
            await uow.commit()
        return photo_set

    async def check_room(self, user_id: uuid.UUID, set_id: uuid.UUID) -> None:
        """Raises NotFound (not the user's set) and PhotoSetFull: what ``add_photo``
        checks first, for the edge to ask before it reads an upload's body."""
        async with self.uow_factory() as uow:
            await self._room(uow, user_id, set_id)

    async def add_photo(self, user_id: uuid.UUID, set_id: uuid.UUID, data: bytes) -> Photo:
        """Check one photo and record it with its verdict (a bad photo is recorded too:
        the app shows why it is unusable). Raises NotFound (not the user's set) and
        PhotoSetFull, both before the photo is looked at, and ContentRefused (``photo``)
        when moderation refuses it: then nothing is recorded or stored."""
        await self.check_room(user_id, set_id)
        analysed = await self.analyser.analyse(data)
        if analysed.data is not None and self.moderation is not None:
            assert analysed.content_type is not None
            await self.moderation.check_image(
                analysed.data,
                analysed.content_type,
                Surface.TRAINING_PHOTO,
                user_id=user_id,
                field="photo",
                reference=content_reference(f"photo_set:{set_id}", analysed.data),
            )
        photo_id = new_id()
        key = photo_key(user_id, set_id, photo_id) if analysed.data is not None else None
        if key is not None:
            await self._store(key, user_id, analysed)
        try:
            async with self.uow_factory() as uow:
                photos = await self._room(uow, user_id, set_id, lock=True)
                photo = self._photo(photo_id, user_id, set_id, key, analysed, photos)
                await uow.photo_sets.add_photo(photo)
                if key is not None:
                    await uow.uploads.settle([key])
                await uow.commit()
        except BaseException:
            if key is not None:
                await _discard_uploads(self.uow_factory, self.storage, [key])
            raise
        return photo

    async def _room(
        self, uow: UnitOfWork, user_id: uuid.UUID, set_id: uuid.UUID, *, lock: bool = False
    ) -> list[Photo]:
        """The set's photos, once it is known to be the user's and to have room."""
        await _own_set(uow.photo_sets, user_id, set_id, lock=lock)
        photos = await uow.photo_sets.list_photos(set_id)
        if len(photos) >= self.limits.max_photos_per_set:
            raise PhotoSetFull(
                f"the set holds {self.limits.max_photos_per_set} photos, the most allowed;"
                " delete one first",
                field="photo",
            )
        return photos

    async def _store(self, key: str, user_id: uuid.UUID, analysed: AnalysedPhoto) -> None:
        assert analysed.data is not None and analysed.content_type is not None
        async with self.uow_factory() as uow:
            await uow.uploads.expect(key, user_id, self.clock.now())
            await uow.commit()
        try:
            await self.storage.put(key, analysed.data, analysed.content_type)
        except BaseException:
            await _discard_uploads(self.uow_factory, self.storage, [key])
            raise

    def _photo(
        self,
        photo_id: uuid.UUID,
        user_id: uuid.UUID,
        set_id: uuid.UUID,
        key: str | None,
        analysed: AnalysedPhoto,
        photos: Sequence[Photo],
    ) -> Photo:
        if analysed.measures is None:
            verdict = unmeasured(analysed.problem or _UNREADABLE)
        else:
            accepted = [p.measures.phash for p in photos if p.verdict.accepted and p.measures]
            verdict = judge(analysed.measures, self.thresholds, accepted)
        return Photo(
            id=photo_id,
            set_id=set_id,
            user_id=user_id,
            storage_key=key,
            content_type=analysed.content_type,
            width=analysed.width,
            height=analysed.height,
            byte_size=len(analysed.data or b""),
            measures=analysed.measures,
            verdict=verdict,
            created_at=self.clock.now(),
        )

    async def delete_photo(
        self, user_id: uuid.UUID, set_id: uuid.UUID, photo_id: uuid.UUID
    ) -> None:
        """Raises NotFound (not the user's set or photo) and PhotoSetInUse."""
        async with self.uow_factory() as uow:
            await _own_set(uow.photo_sets, user_id, set_id, lock=True)
            photo = await uow.photo_sets.get_photo(photo_id)
            if photo is None or photo.set_id != set_id:
                raise NotFound("no such photo in this set", field="photoId")
            await _not_in_training(uow.photo_sets, set_id)
            await uow.photo_sets.delete_photo(photo_id)
            keys = [photo.storage_key] if photo.storage_key else []
            await self._forget_files(uow, user_id, keys)
            await uow.commit()
        await _discard_uploads(self.uow_factory, self.storage, keys)

    async def delete_set(self, user_id: uuid.UUID, set_id: uuid.UUID) -> None:
        """The set, its photos and their files. Raises NotFound and PhotoSetInUse."""
        async with self.uow_factory() as uow:
            await _own_set(uow.photo_sets, user_id, set_id, lock=True)
            await _not_in_training(uow.photo_sets, set_id)
            photos = await uow.photo_sets.list_photos(set_id)
            keys = [p.storage_key for p in photos if p.storage_key]
            await uow.photo_sets.delete_set(set_id)
            await self._forget_files(uow, user_id, keys)
            await uow.commit()
        await _discard_uploads(self.uow_factory, self.storage, keys)

    async def _forget_files(self, uow: UnitOfWork, user_id: uuid.UUID, keys: list[str]) -> None:
        # the files become expected uploads in the transaction that drops their rows:
        # if this process dies before deleting them, the reconciler's sweep does
        for key in keys:
            await uow.uploads.expect(key, user_id, self.clock.now())

    # --- the read side ------------------------------------------------------------------

    async def view(self, user_id: uuid.UUID, set_id: uuid.UUID) -> PhotoSetView:
        """The set with every photo, its verdict and a signed URL. Raises NotFound."""
        async with self.uow_factory() as uow:
            photo_set = await _own_set(uow.photo_sets, user_id, set_id)
            photos = await uow.photo_sets.list_photos(set_id)
        # URLs are signed after the unit of work: no connection held while storage answers
        views = [PhotoView(photo=p, url=await self.url_of(p)) for p in photos]
        return PhotoSetView(photo_set=photo_set, photos=views)

    async def url_of(self, photo: Photo) -> str | None:
        """A signed, expiring URL of the stored photo; None when nothing was stored."""
        if photo.storage_key is None:
            return None
        return await self.storage.signed_url(photo.storage_key, self.url_ttl)

    async def list_sets(self, user_id: uuid.UUID) -> list[PhotoSetSummary]:
        async with self.uow_factory() as uow:
            sets = await uow.photo_sets.list_sets(user_id)
            counts = await uow.photo_sets.photo_counts([s.id for s in sets])
        return [
            PhotoSetSummary(
                photo_set=s,
                photo_count=counts.get(s.id, (0, 0))[0],
                accepted_count=counts.get(s.id, (0, 0))[1],
            )
            for s in sets
        ]


_UNREADABLE = PhotoReason.UNREADABLE


async def _own_set(
    repo: PhotoSetRepository, user_id: uuid.UUID, set_id: uuid.UUID, *, lock: bool = False
) -> PhotoSet:
    """The user's set; another user's set reads as missing (404), never as forbidden."""
    photo_set = await repo.get_set(set_id, lock=lock)
    if photo_set is None or photo_set.user_id != user_id:
        raise NotFound("no such photo set", field="id")
    return photo_set


async def _not_in_training(repo: PhotoSetRepository, set_id: uuid.UUID) -> None:
    if await repo.in_use_by_training(set_id):
        raise PhotoSetInUse(
            "a training job that uses this set is queued or running, or a model trained"
            " from it keeps it (deleting the model deletes the set)"
        )
