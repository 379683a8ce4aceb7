"""The photo-set repository's contract (genstudio.ports.repositories.training.PhotoSetRepository)
over every unit-of-work adapter (memory, Postgres)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from genstudio.core.model.errors import NotFound
from genstudio.core.model.training.photos import (
    FaceBox,
    Photo,
    PhotoMeasures,
    PhotoReason,
    PhotoSet,
    Verdict,
    photo_key,
    unmeasured,
)
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 5, 1, 9, tzinfo=UTC)
MEASURES = PhotoMeasures(
    width=1200,
    height=1600,
    sharpness=240.5,
    mean_luminance=121.25,
    dark_clipped=0.01,
    bright_clipped=0.0,
    faces=(FaceBox(300, 400, 420, 420),),
    phash="c3d4e5f60718293a",
)


async def new_user(factory: UnitOfWorkFactory) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user_id, None)
        await uow.commit()
    return user_id


async def new_set(factory: UnitOfWorkFactory, user_id: uuid.UUID, at: datetime = T0) -> PhotoSet:
    photo_set = PhotoSet(id=uuid.uuid4(), user_id=user_id, name="me", created_at=at)
    async with factory() as uow:
        await uow.photo_sets.add_set(photo_set)
        await uow.commit()
    return photo_set


def a_photo(photo_set: PhotoSet, at: datetime, *, accepted: bool = True) -> Photo:
    photo_id = uuid.uuid4()
    verdict = (
        Verdict(accepted=True, reasons=(), score=77)
        if accepted
        else Verdict(accepted=False, reasons=(PhotoReason.BLURRY, PhotoReason.NO_FACE), score=12)
    )
    return Photo(
        id=photo_id,
        set_id=photo_set.id,
        user_id=photo_set.user_id,
        storage_key=photo_key(photo_set.user_id, photo_set.id, photo_id),
        content_type="image/jpeg",
        width=1200,
        height=1600,
        byte_size=123_456,
        measures=MEASURES,
        verdict=verdict,
        created_at=at,
    )


async def test_a_set_and_its_photos_read_back_as_written(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    photo_set = await new_set(uow_factory, user)
    good = a_photo(photo_set, T0)
    bad = a_photo(photo_set, T0 + timedelta(seconds=1), accepted=False)
    unreadable = Photo(
        id=uuid.uuid4(),
        set_id=photo_set.id,
        user_id=user,
        storage_key=None,
        content_type=None,
        width=0,
        height=0,
        byte_size=0,
        measures=None,
        verdict=unmeasured(PhotoReason.UNREADABLE),
        created_at=T0 + timedelta(seconds=2),
    )
    async with uow_factory() as uow:
        for photo in (bad, unreadable, good):
            await uow.photo_sets.add_photo(photo)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.photo_sets.get_set(photo_set.id) == photo_set
        assert await uow.photo_sets.list_photos(photo_set.id) == [good, bad, unreadable]
        assert await uow.photo_sets.get_photo(bad.id) == bad
        assert await uow.photo_sets.photo_counts([photo_set.id, uuid.uuid4()]) == {
            photo_set.id: (3, 1)
        }
        assert await uow.photo_sets.in_use_by_training(photo_set.id) is False


async def test_a_users_sets_list_newest_first_and_count_only_theirs(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me, other = await new_user(uow_factory), await new_user(uow_factory)
    older = await new_set(uow_factory, me, T0)
    newer = await new_set(uow_factory, me, T0 + timedelta(minutes=1))
    await new_set(uow_factory, other)
    async with uow_factory() as uow:
        assert await uow.photo_sets.list_sets(me) == [newer, older]
        assert await uow.photo_sets.count_sets(me) == 2
        assert await uow.photo_sets.count_sets(uuid.uuid4()) == 0


async def test_deleting_a_set_deletes_its_photos_and_nothing_else(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    doomed, kept = await new_set(uow_factory, user), await new_set(uow_factory, user)
    gone, stays = a_photo(doomed, T0), a_photo(kept, T0)
    async with uow_factory() as uow:
        await uow.photo_sets.add_photo(gone)
        await uow.photo_sets.add_photo(stays)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.photo_sets.delete_set(doomed.id)
        await uow.photo_sets.delete_set(uuid.uuid4())  # missing: not an error
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.photo_sets.get_set(doomed.id) is None
        assert await uow.photo_sets.get_photo(gone.id) is None
        assert await uow.photo_sets.list_photos(kept.id) == [stays]


async def test_deleting_a_photo_is_undone_by_a_rollback(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    photo_set = await new_set(uow_factory, user)
    photo = a_photo(photo_set, T0)
    async with uow_factory() as uow:
        await uow.photo_sets.add_photo(photo)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.photo_sets.delete_photo(photo.id)
        assert await uow.photo_sets.get_photo(photo.id) is None
    async with uow_factory() as uow:
        assert await uow.photo_sets.get_photo(photo.id) == photo
        await uow.photo_sets.delete_photo(photo.id)
        await uow.photo_sets.delete_photo(photo.id)  # missing: not an error
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.photo_sets.list_photos(photo_set.id) == []


async def test_a_photo_of_a_missing_set_is_refused(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    ghost = PhotoSet(id=uuid.uuid4(), user_id=user, name=None, created_at=T0)
    with pytest.raises(NotFound):
        async with uow_factory() as uow:
            await uow.photo_sets.add_photo(a_photo(ghost, T0))
            await uow.commit()


async def test_a_locked_set_serialises_its_writers(uow_factory: UnitOfWorkFactory) -> None:
    """Two uploads to one set: the second reads the set (and its photos) only after the
    first committed, so a cap counted from ``list_photos`` cannot be overtaken."""
    user = await new_user(uow_factory)
    photo_set = await new_set(uow_factory, user)
    seen: list[int] = []

    async def upload(delay: float) -> None:
        async with uow_factory() as uow:
            assert await uow.photo_sets.get_set(photo_set.id, lock=True) == photo_set
            seen.append(len(await uow.photo_sets.list_photos(photo_set.id)))
            await asyncio.sleep(delay)
            await uow.photo_sets.add_photo(a_photo(photo_set, T0 + timedelta(seconds=delay)))
            await uow.commit()

    await asyncio.gather(upload(0.2), upload(0.0))
    assert sorted(seen) == [0, 1]


async def test_creating_sets_is_serialised_per_owner(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    seen: list[int] = []

    async def create() -> None:
        async with uow_factory() as uow:
            await uow.photo_sets.lock_owner(user)
            seen.append(await uow.photo_sets.count_sets(user))
            await asyncio.sleep(0.1)
            await uow.photo_sets.add_set(
                PhotoSet(id=uuid.uuid4(), user_id=user, name=None, created_at=T0)
            )
            await uow.commit()

    await asyncio.gather(create(), create())
    assert sorted(seen) == [0, 1]
