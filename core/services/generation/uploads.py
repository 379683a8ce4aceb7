"""A submission's uploads: stored before its transaction, never kept without a record."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

import msgspec

from genstudio.core.model.ids import new_id
from genstudio.core.model.media import MediaAsset, MediaKind, upload_key
from genstudio.core.services.generation.captions import CAPTION_BUDGET, captions_of
from genstudio.core.services.generation.submitted import Submitted
from genstudio.ports.ai import Captioner
from genstudio.ports.clock import Clock
from genstudio.ports.imaging import InspectedImage
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")

#: an upload still expected this long after it was stored belongs to a submission
#: that never committed: far longer than any request takes
ORPHAN_AFTER = timedelta(hours=1)


class Upload(msgspec.Struct, frozen=True):
    """A file as the client sent it: its bytes and declared content type."""

    data: bytes
    content_type: str | None = None


class _Uploads:
    """Uploads of one submission: stored before it, recorded with it, undone without it.

    Each is *expected* (``uow.uploads``, committed) before its bytes are stored, and
    settled by the submission's own transaction or once deleted again; if the process
    dies in between, the reconciler finds it expected long after and deletes it
    (``sweep_orphaned_uploads``), so a user's photo is never kept without a record.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        storage: MediaStorage,
        clock: Clock,
        user_id: uuid.UUID,
        captioner: Captioner | None = None,
        *,
        caption_budget: float = CAPTION_BUDGET,
    ) -> None:
        self.uow_factory = uow_factory
        self.storage = storage
        self.clock = clock
        self.user_id = user_id
        self.captioner = captioner
        self.caption_budget = caption_budget  # all captions together, concurrently
        self.planned: list[tuple[MediaAsset, bytes]] = []

    def plan(self, image: InspectedImage) -> str:
        media_id = new_id()
        asset = MediaAsset(
            id=media_id,
            user_id=self.user_id,
            kind=MediaKind.IMAGE,
            storage_key=upload_key(self.user_id, media_id),
            content_type="image/png",
            width=image.width,
            height=image.height,
            byte_size=len(image.data),
            prompt="",
            model_id="",
            job_id=None,
            created_at=self.clock.now(),
        )
        self.planned.append((asset, image.data))
        return asset.storage_key

    async def run(
        self, submit: Callable[[Sequence[MediaAsset]], Awaitable[Submitted]]
    ) -> Submitted:
        stored: list[str] = []
        if self.planned:
            async with self.uow_factory() as uow:
                for asset, _ in self.planned:
                    await uow.uploads.expect(asset.storage_key, self.user_id, self.clock.now())
                await uow.commit()
        if self.captioner is not None:
            captions = await captions_of(
                self.captioner,
                [(data, asset.content_type) for asset, data in self.planned],
                budget=self.caption_budget,
            )
            self.planned = [
                (msgspec.structs.replace(asset, caption=caption), data)
                for (asset, data), caption in zip(self.planned, captions, strict=True)
            ]
        try:
            for asset, data in self.planned:
                stored.append(asset.storage_key)
                await self.storage.put(asset.storage_key, data, asset.content_type)
            result = await submit([asset for asset, _ in self.planned])
        except BaseException:
            await self._delete(stored)
            raise
        if result.replayed:  # the first request's uploads serve the job; ours are spare
            await self._delete(stored)
        return result

    async def _delete(self, stored: list[str]) -> None:
        # best effort: the submission's own error matters more
        unstored = [a.storage_key for a, _ in self.planned if a.storage_key not in stored]
        await _discard_uploads(self.uow_factory, self.storage, stored, unstored=unstored)


async def _discard_uploads(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    stored: Sequence[str],
    *,
    unstored: Sequence[str] = (),
) -> int:
    """Delete the stored uploads' objects and settle them, with the uploads that were
    expected but never stored. One whose object could not be deleted stays expected,
    for the reconciler's next pass; so do all of them if settling fails. Returns how
    many objects were deleted and settled."""
    deleted = []
    for key in stored:
        try:
            await storage.delete(key)
        except Exception as exc:  # the storage's own errors are adapter-specific
            log.warning("could not delete an upload", extra={"key": key, "error": str(exc)})
            continue
        deleted.append(key)
    gone = [*deleted, *unstored]
    if not gone:
        return 0
    try:
        async with uow_factory() as uow:
            await uow.uploads.settle(gone)
            await uow.commit()
    except Exception as exc:  # deleting them again later is harmless
        log.warning("could not settle deleted uploads", extra={"keys": gone, "error": str(exc)})
        return 0
    return len(deleted)


async def sweep_orphaned_uploads(
    uow_factory: UnitOfWorkFactory,
    storage: MediaStorage,
    clock: Clock,
    *,
    older_than: timedelta = ORPHAN_AFTER,
    limit: int = 200,
) -> int:
    """Delete uploads stored for a submission that never committed (the process died
    between storing and committing). Idempotent; returns how many were swept."""
    async with uow_factory() as uow:
        keys = await uow.uploads.stale(clock.now() - older_than, limit=limit)
    swept = await _discard_uploads(uow_factory, storage, keys)
    if swept:
        log.info("swept orphaned uploads", extra={"count": swept})
    return swept
