"""How workers claim jobs, the same over the in-memory and the Postgres adapters:
priority with aging, per-user limits, retry times, leases, and no double claims."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.queueing import PriorityPolicy, QueuePolicy
from genstudio.ports.unit_of_work import UnitOfWorkFactory

NOW = datetime.now(UTC).replace(microsecond=0)
POLICY = QueuePolicy(per_user_in_flight=2, priority=PriorityPolicy(aging_seconds=30, max_boost=20))


def a_job(user: uuid.UUID, **fields: object) -> Job:
    values: dict[str, object] = {
        "id": uuid.uuid4(),
        "user_id": user,
        "kind": ModelKind.TRAINING,  # a kind no other test queues, so claims see only ours
        "model_id": "flux-lora",
        "params": ImageParams(prompt="x"),
        "cost": 1,
        "hold_id": None,
        "status": JobStatus.QUEUED,
        "created_at": NOW,
        "updated_at": NOW,
    }
    values.update(fields)
    return Job(**values)  # type: ignore[arg-type]


async def seed(factory: UnitOfWorkFactory, *jobs: Job) -> None:
    async with factory() as uow:
        for user in {j.user_id for j in jobs}:
            await uow.profiles.ensure(user, None)
        for job in jobs:
            await uow.jobs.add(job)
        await uow.commit()


async def claim(factory: UnitOfWorkFactory, now: datetime = NOW) -> Job | None:
    async with factory() as uow:
        job = await uow.jobs.claim_next("training", now=now, policy=POLICY)
        if job is not None:
            # take it, as a worker would, so the next claim moves on
            await uow.jobs.update(
                job.dispatch("p", now, lease_owner="w", lease_until=now + timedelta(seconds=30))
            )
            await uow.commit()
        return job


@pytest.fixture
async def clean(uow_factory: UnitOfWorkFactory) -> UnitOfWorkFactory:
    """Finish every training job other tests left queued, so claims see only ours."""
    async with uow_factory() as uow:
        for job in await uow.jobs.list_by_status(
            frozenset({JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING}), limit=10_000
        ):
            if job.kind is ModelKind.TRAINING:
                await uow.jobs.update(job.cancel(NOW))
        await uow.commit()
    return uow_factory


async def test_paying_users_jobs_are_claimed_first(clean: UnitOfWorkFactory) -> None:
    free, premium = a_job(uuid.uuid4(), priority=0), a_job(uuid.uuid4(), priority=9)
    await seed(clean, free, premium)
    assert (await claim(clean)).id == premium.id  # type: ignore[union-attr]
    assert (await claim(clean)).id == free.id  # type: ignore[union-attr]
    assert await claim(clean) is None


async def test_a_free_job_that_waited_long_enough_goes_before_a_new_paying_one(
    clean: UnitOfWorkFactory,
) -> None:
    old_free = a_job(uuid.uuid4(), priority=0, created_at=NOW - timedelta(minutes=5))
    new_pro = a_job(uuid.uuid4(), priority=5)
    await seed(clean, old_free, new_pro)
    assert (await claim(clean)).id == old_free.id  # type: ignore[union-attr]


async def test_a_user_at_the_in_flight_limit_waits_while_others_go(
    clean: UnitOfWorkFactory,
) -> None:
    busy, other = uuid.uuid4(), uuid.uuid4()
    first, second, third = (
        a_job(busy, created_at=NOW - timedelta(seconds=i)) for i in (30, 20, 10)
    )
    theirs = a_job(other)
    await seed(clean, first, second, third, theirs)
    claimed = [await claim(clean) for _ in range(3)]
    assert [j.id for j in claimed if j] == [first.id, second.id, theirs.id]
    assert await claim(clean) is None, "the busy user's third job waits for a free slot"


async def test_a_job_waiting_for_its_retry_time_is_not_claimed_before_it(
    clean: UnitOfWorkFactory,
) -> None:
    later = a_job(uuid.uuid4(), next_attempt_at=NOW + timedelta(seconds=10))
    await seed(clean, later)
    assert await claim(clean) is None
    assert (await claim(clean, NOW + timedelta(seconds=11))).id == later.id  # type: ignore[union-attr]


async def test_an_abandoned_job_is_claimable_and_a_leased_one_is_not(
    clean: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    live = a_job(
        user,
        status=JobStatus.RUNNING,
        attempts=1,
        provider="p",
        lease_owner="a",
        lease_expires_at=NOW + timedelta(seconds=20),
    )
    dead = a_job(
        user,
        status=JobStatus.RUNNING,
        attempts=1,
        provider="p",
        lease_owner="b",
        lease_expires_at=NOW - timedelta(seconds=1),
    )
    await seed(clean, live, dead)
    async with clean() as uow:
        got = await uow.jobs.claim_next("training", now=NOW, policy=POLICY)
        assert got is not None and got.id == dead.id
        await uow.jobs.update(got.leased("c", NOW + timedelta(seconds=30), NOW))
        await uow.commit()
    async with clean() as uow:
        assert await uow.jobs.claim_next("training", now=NOW, policy=POLICY) is None


async def test_two_workers_claiming_at_once_never_get_the_same_job(
    clean: UnitOfWorkFactory,
) -> None:
    jobs = [a_job(uuid.uuid4()) for _ in range(4)]
    await seed(clean, *jobs)
    release = asyncio.Event()

    async def worker() -> uuid.UUID | None:
        async with clean() as uow:
            job = await uow.jobs.claim_next("training", now=NOW, policy=POLICY)
            await release.wait()  # hold the row lock while the other claims
            if job is None:
                return None
            await uow.jobs.update(
                job.dispatch("p", NOW, lease_owner="w", lease_until=NOW + timedelta(seconds=30))
            )
            await uow.commit()
            return job.id

    tasks = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0.2)
    release.set()
    claimed = [j for j in await asyncio.gather(*tasks) if j is not None]
    assert len(claimed) == 3 == len(set(claimed))
