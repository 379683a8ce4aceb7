"""The trained-model repository's contract (ports.repositories.training.
TrainedModelRepository) and what keeps a photo set (``in_use_by_training``), over
every unit-of-work adapter (memory, Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import DuplicateEntry, NotFound
from genstudio.core.model.job_params import TrainingParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.training.models import TrainedModel, TrainedModelStatus, weights_key
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from tests.contract.test_photo_set_repository import new_set, new_user

T0 = datetime(2026, 6, 1, 9, tzinfo=UTC)


def a_model(
    user_id: uuid.UUID, *, at: datetime = T0, set_id: uuid.UUID | None = None,
    job_id: uuid.UUID | None = None,
) -> TrainedModel:  # fmt: skip
    model_id = uuid.uuid4()
    return TrainedModel(
        id=model_id,
        user_id=user_id,
        name="Me",
        trigger_word="ohwx",
        base_model="flux-schnell",
        weights_key=weights_key(user_id, model_id),
        weights_bytes=4096,
        status=TrainedModelStatus.READY,
        thumbnail_key=f"{user_id}/{uuid.uuid4()}.png",
        photo_set_id=set_id,
        job_id=job_id,
        created_at=at,
        updated_at=at,
    )


async def add(factory: UnitOfWorkFactory, model: TrainedModel) -> None:
    async with factory() as uow:
        await uow.trained_models.add(model)
        await uow.commit()


async def a_training_job(
    factory: UnitOfWorkFactory, user_id: uuid.UUID, set_id: uuid.UUID, status: JobStatus
) -> Job:
    job = Job(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=ModelKind.TRAINING,
        model_id="flux-lora",
        params=TrainingParams(
            photo_set_id=set_id,
            photo_keys=("k",) * 10,
            steps=500,
            trigger_word="ohwx",
            base_model="flux-schnell",
            name="Me",
        ),
        cost=50,
        hold_id=None,
        status=JobStatus.QUEUED,
        created_at=T0,
        updated_at=T0,
    )
    async with factory() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    if status is not JobStatus.QUEUED:
        async with factory() as uow:
            current = await uow.jobs.get(job.id, lock=True)
            assert current is not None
            job = await uow.jobs.update(msgspec.structs.replace(current, status=status))
            await uow.commit()
    return job


async def test_a_model_reads_back_as_written_by_id_and_by_its_job(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await new_user(uow_factory)
    job = await a_training_job(
        uow_factory, me, (await new_set(uow_factory, me)).id, JobStatus.QUEUED
    )
    model = a_model(me, job_id=job.id)
    await add(uow_factory, model)
    async with uow_factory() as uow:
        assert await uow.trained_models.get(model.id) == model
        assert await uow.trained_models.get(model.id, lock=True) == model
        assert await uow.trained_models.for_job(job.id) == model
        assert await uow.trained_models.get(uuid.uuid4()) is None
        assert await uow.trained_models.for_job(uuid.uuid4()) is None


async def test_a_job_makes_at_most_one_model(uow_factory: UnitOfWorkFactory) -> None:
    me = await new_user(uow_factory)
    job = await a_training_job(
        uow_factory, me, (await new_set(uow_factory, me)).id, JobStatus.QUEUED
    )
    await add(uow_factory, a_model(me, job_id=job.id))
    with pytest.raises(DuplicateEntry):
        await add(uow_factory, a_model(me, job_id=job.id))


async def test_a_users_models_list_newest_first_and_only_theirs(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me, other = await new_user(uow_factory), await new_user(uow_factory)
    old, new = a_model(me, at=T0), a_model(me, at=T0 + timedelta(hours=1))
    for model in (old, new, a_model(other)):
        await add(uow_factory, model)
    async with uow_factory() as uow:
        assert [m.id for m in await uow.trained_models.list_for_user(me)] == [new.id, old.id]


async def test_a_model_is_renamed_and_deleted(uow_factory: UnitOfWorkFactory) -> None:
    me = await new_user(uow_factory)
    model = a_model(me)
    await add(uow_factory, model)
    renamed = model.renamed("Me, again", T0 + timedelta(days=1))
    async with uow_factory() as uow:
        await uow.trained_models.update(renamed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.trained_models.get(model.id) == renamed
        await uow.trained_models.delete(model.id)
        await uow.trained_models.delete(model.id)  # a missing one is no error
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.trained_models.get(model.id) is None
        with pytest.raises(NotFound):
            await uow.trained_models.update(renamed)


async def test_a_set_is_kept_by_its_models_and_by_unfinished_trainings_only(
    uow_factory: UnitOfWorkFactory,
) -> None:
    me = await new_user(uow_factory)
    kept, trained, done, free = [(await new_set(uow_factory, me)).id for _ in range(4)]
    await add(uow_factory, a_model(me, set_id=kept))
    await a_training_job(uow_factory, me, trained, JobStatus.RUNNING)
    await a_training_job(uow_factory, me, done, JobStatus.FAILED)
    async with uow_factory() as uow:
        assert await uow.trained_models.keeping_set(kept) == 1
        assert await uow.trained_models.keeping_set(free) == 0
        in_use = [await uow.photo_sets.in_use_by_training(s) for s in (kept, trained, done, free)]
    assert in_use == [True, True, False, False]
