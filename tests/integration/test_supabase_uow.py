"""The Postgres unit of work: transactions, locks and the domain errors of the port,
with concurrent units of work on separate connections where a race is possible."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from genstudio.adapters.supabase import tables
from genstudio.adapters.supabase.db import make_engine, normalise_url
from genstudio.adapters.supabase.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind, Hold, HoldStatus, LedgerEntry
from genstudio.core.model.errors import (
    ConcurrencyConflict,
    DuplicateEntry,
    InsufficientCredits,
    NotFound,
)
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.idempotency import IdempotencyRecord, StoredResponse
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.pricing import ModelKind
from genstudio.core.services.credits import add_credits, grant_credits, place_hold, release_hold

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def uows(pg_engine: AsyncEngine) -> AsyncIterator[SqlUnitOfWorkFactory]:
    yield SqlUnitOfWorkFactory(pg_engine)


async def new_user(uows: SqlUnitOfWorkFactory, credits: int = 0) -> uuid.UUID:
    user_id = uuid.uuid4()
    if credits:
        await grant_credits(
            uows, user_id=user_id, amount=credits, reference="test", idempotency_key="seed", now=NOW
        )
    else:
        async with uows() as uow:
            await uow.profiles.ensure(user_id, f"{user_id}@example.com")
            await uow.commit()
    return user_id


def entry(user_id: uuid.UUID, amount: int, key: str, balance_after: int = 0) -> LedgerEntry:
    return LedgerEntry(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=EntryKind.ADJUSTMENT,
        amount=amount,
        balance_after=balance_after,
        reference="test",
        idempotency_key=key,
        created_at=NOW,
    )


def job_for(user_id: uuid.UUID, *, created_at: datetime = NOW) -> Job:
    return Job(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=ModelKind.IMAGE,
        model_id="flux-schnell",
        params=ImageParams(prompt="a lighthouse at dusk", width=768, seed=7),
        cost=4,
        hold_id=None,
        status=JobStatus.QUEUED,
        created_at=created_at,
        updated_at=created_at,
    )


# --- transactions -----------------------------------------------------------------------


async def test_nothing_is_kept_without_a_commit(uows: SqlUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    async with uows() as uow:
        await uow.profiles.ensure(user_id, None)
        assert await uow.profiles.get(user_id) is not None
    async with uows() as uow:
        assert await uow.profiles.get(user_id) is None


async def test_an_exception_rolls_back(uows: SqlUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    with pytest.raises(RuntimeError):
        async with uows() as uow:
            await uow.profiles.ensure(user_id, None)
            raise RuntimeError("boom")
    async with uows() as uow:
        assert await uow.profiles.get(user_id) is None


async def test_a_commit_keeps_the_work_and_later_work_needs_another(
    uows: SqlUnitOfWorkFactory,
) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    async with uows() as uow:
        await uow.profiles.ensure(first, "a@example.com")
        await uow.commit()
        await uow.profiles.ensure(second, None)
    async with uows() as uow:
        kept = await uow.profiles.get(first)
        assert kept is not None and kept.email == "a@example.com"
        assert await uow.profiles.get(second) is None


async def test_rollback_discards_and_the_unit_stays_usable(uows: SqlUnitOfWorkFactory) -> None:
    dropped, kept = uuid.uuid4(), uuid.uuid4()
    async with uows() as uow:
        await uow.profiles.ensure(dropped, None)
        await uow.rollback()
        await uow.profiles.ensure(kept, None)
        await uow.commit()
    async with uows() as uow:
        assert await uow.profiles.get(dropped) is None
        assert await uow.profiles.get(kept) is not None


async def test_repositories_outside_the_block_refuse_to_run(uows: SqlUnitOfWorkFactory) -> None:
    uow = uows()
    with pytest.raises(RuntimeError):
        await uow.commit()


# --- profiles ---------------------------------------------------------------------------


async def test_ensure_creates_a_free_profile_once(uows: SqlUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()
    async with uows() as uow:
        created = await uow.profiles.ensure(user_id, "ada@example.com")
        again = await uow.profiles.ensure(user_id, "changed@example.com")
        await uow.commit()
    assert created == again
    assert created.credits == 0 and created.subscription_tier == "free"
    assert created.email == "ada@example.com"
    assert created.created_at.tzinfo is UTC


async def test_ensure_uses_an_existing_auth_user(
    uows: SqlUnitOfWorkFactory, pg_engine: AsyncEngine
) -> None:
    """On Supabase the auth user exists before the app ever sees its token."""
    user_id = uuid.uuid4()
    async with pg_engine.begin() as conn:
        await conn.execute(tables.auth_users.insert().values(id=user_id, email="auth@example.com"))
    async with uows() as uow:
        profile = await uow.profiles.ensure(user_id, "auth@example.com")
        await uow.commit()
    assert profile.id == user_id


async def test_concurrent_ensures_make_one_profile(uows: SqlUnitOfWorkFactory) -> None:
    user_id = uuid.uuid4()

    async def ensure() -> None:
        async with uows() as uow:
            await uow.profiles.ensure(user_id, None)
            await uow.commit()

    await asyncio.gather(*(ensure() for _ in range(5)))
    async with uows() as uow:
        assert await uow.profiles.get(user_id) is not None


# --- ledger -----------------------------------------------------------------------------


async def test_locking_an_unknown_account_is_not_found(uows: SqlUnitOfWorkFactory) -> None:
    async with uows() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.lock_account(uuid.uuid4())


async def test_account_locks_serialize_concurrent_units(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    events: list[str] = []
    first_locked = asyncio.Event()

    async def first() -> None:
        async with uows() as uow:
            await uow.ledger.lock_account(user_id)
            first_locked.set()
            await asyncio.sleep(0.3)  # the second unit must be waiting all along
            await uow.ledger.append(entry(user_id, 10, "first", balance_after=10))
            events.append("first commits")
            await uow.commit()

    async def second() -> int:
        await first_locked.wait()
        async with uows() as uow:
            events.append("second asks")
            balance = await uow.ledger.lock_account(user_id)
            events.append("second locked")
            return balance

    _, seen = await asyncio.gather(first(), second())
    assert events == ["second asks", "first commits", "second locked"]
    assert seen == 10  # the lock returns the balance as committed by the first


async def test_concurrent_holds_never_overdraw(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows, credits=100)

    async def hold() -> bool:
        async with uows() as uow:
            try:
                await place_hold(uow, user_id=user_id, amount=30, reference="job", now=NOW)
            except InsufficientCredits:
                return False
            await uow.commit()
            return True

    results = await asyncio.gather(*(hold() for _ in range(6)))
    assert results.count(True) == 3
    async with uows() as uow:
        assert await uow.ledger.balance(user_id) == 10
        assert sum(lot.remaining for lot in await uow.ledger.lots(user_id)) == 10


async def test_a_debit_beyond_the_balance_is_refused_and_the_unit_goes_on(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = await new_user(uows, credits=5)
    async with uows() as uow:
        await uow.ledger.lock_account(user_id)
        with pytest.raises(InsufficientCredits) as caught:
            await uow.ledger.append(entry(user_id, -6, "too-much"))
        assert (caught.value.required, caught.value.available) == (6, 5)
        await uow.ledger.append(entry(user_id, -5, "all-of-it"))
        await uow.commit()
    async with uows() as uow:
        assert await uow.ledger.balance(user_id) == 0
        assert await uow.ledger.find(user_id, "too-much") is None


async def test_a_repeated_key_is_a_duplicate_and_the_unit_goes_on(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = await new_user(uows)
    async with uows() as uow:
        await uow.ledger.append(entry(user_id, 7, "grant-1", balance_after=7))
        with pytest.raises(DuplicateEntry):
            await uow.ledger.append(entry(user_id, 7, "grant-1", balance_after=14))
        await uow.ledger.append(entry(user_id, 1, "grant-2", balance_after=8))
        await uow.commit()
    async with uows() as uow:
        assert await uow.ledger.balance(user_id) == 8
        found = await uow.ledger.find(user_id, "grant-1")
        assert found is not None and found.balance_after == 7


async def test_the_same_key_is_free_for_another_user(uows: SqlUnitOfWorkFactory) -> None:
    first, second = await new_user(uows), await new_user(uows)
    async with uows() as uow:
        await uow.ledger.append(entry(first, 1, "shared-key", balance_after=1))
        await uow.ledger.append(entry(second, 1, "shared-key", balance_after=1))
        await uow.commit()


async def test_an_entry_for_a_user_without_a_profile_is_not_found(
    uows: SqlUnitOfWorkFactory,
) -> None:
    async with uows() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.append(entry(uuid.uuid4(), 1, "k"))


async def test_entries_page_newest_first_by_time_then_id(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    async with uows() as uow:
        written: list[LedgerEntry] = []
        for i in range(7):
            # pairs share a timestamp, so the id must break the tie
            at = NOW + timedelta(seconds=i // 2)
            one = LedgerEntry(
                id=uuid.uuid4(),
                user_id=user_id,
                kind=EntryKind.GRANT,
                amount=1,
                balance_after=i + 1,
                reference="page",
                idempotency_key=f"page-{i}",
                created_at=at,
            )
            await uow.ledger.append(one)
            written.append(one)
        await uow.commit()
    expected = sorted(written, key=lambda e: (e.created_at, e.id.bytes), reverse=True)
    pages: list[LedgerEntry] = []
    before: tuple[datetime, uuid.UUID] | None = None
    async with uows() as uow:
        while page := await uow.ledger.entries(user_id, limit=3, before=before):
            pages.extend(page)
            before = (page[-1].created_at, page[-1].id)
    assert pages == expected


async def test_times_come_back_as_the_same_instant_in_utc(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    tokyo = datetime(2026, 1, 2, 9, 30, 15, 123456, tzinfo=timezone(timedelta(hours=9)))
    one = LedgerEntry(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=EntryKind.GRANT,
        amount=1,
        balance_after=1,
        reference="tz",
        idempotency_key="tz",
        created_at=tokyo,
    )
    async with uows() as uow:
        await uow.ledger.append(one)
        found = await uow.ledger.find(user_id, "tz")
    assert found is not None
    assert found.created_at == tokyo and found.created_at.tzinfo is UTC


async def test_a_hold_closes_exactly_once(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows, credits=10)
    async with uows() as uow:
        hold = await place_hold(uow, user_id=user_id, amount=4, reference="job", now=NOW)
        await uow.commit()
    async with uows() as uow:
        stored = await uow.ledger.get_hold(hold.id)
        assert stored == hold
        await uow.ledger.close_hold(hold.close(HoldStatus.SETTLED, NOW))
        with pytest.raises(ConcurrencyConflict):
            await uow.ledger.close_hold(hold.close(HoldStatus.RELEASED, NOW))
        await uow.commit()
    async with uows() as uow:
        closed = await uow.ledger.get_hold(hold.id)
        assert closed is not None and closed.status is HoldStatus.SETTLED


async def test_a_released_hold_refills_its_lots(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    async with uows() as uow:
        await add_credits(
            uow,
            user_id=user_id,
            amount=5,
            kind=EntryKind.ALLOWANCE,
            reference="month",
            idempotency_key="month",
            now=NOW,
            expires_at=NOW + timedelta(days=30),
        )
        await add_credits(
            uow,
            user_id=user_id,
            amount=5,
            kind=EntryKind.PURCHASE,
            reference="pack",
            idempotency_key="pack",
            now=NOW,
        )
        hold: Hold = await place_hold(uow, user_id=user_id, amount=7, reference="job", now=NOW)
        assert [a.amount for a in hold.allocations] == [5, 2]  # soonest-expiring first
        assert await release_hold(uow, hold.id, NOW)
        await uow.commit()
    async with uows() as uow:
        assert sorted(lot.remaining for lot in await uow.ledger.lots(user_id)) == [5, 5]
        assert await uow.ledger.balance(user_id) == 10


async def test_a_lot_cannot_hold_more_than_it_was_given(uows: SqlUnitOfWorkFactory) -> None:
    # the update is checked when it reaches the database: with the next statement,
    # or at the latest with the commit, which then commits nothing
    user_id = await new_user(uows, credits=3)
    async with uows() as uow:
        [lot] = await uow.ledger.lots(user_id)
        with pytest.raises(ValueError):
            await uow.ledger.set_lot_remaining(lot.id, 4)
            await uow.ledger.balance(user_id)
    async with uows() as uow:
        with pytest.raises(ValueError):
            await uow.ledger.set_lot_remaining(lot.id, 4)
            await uow.commit()
        assert not uow.committed
    async with uows() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.set_lot_remaining(uuid.uuid4(), 0)
            await uow.commit()
    # a caller that catches the error cannot commit what came after the failed write
    async with uows() as uow:
        await uow.ledger.set_lot_remaining(lot.id, 4)
        with pytest.raises(ValueError):
            await uow.ledger.append(entry(user_id, 5, "after", balance_after=8))
        with pytest.raises(RuntimeError, match="can only roll back"):
            await uow.commit()
        await uow.rollback()  # and then the unit goes on
        await uow.ledger.set_lot_remaining(lot.id, 2)
        await uow.commit()
    async with uows() as uow:
        assert [x.remaining for x in await uow.ledger.lots(user_id)] == [2]
        assert await uow.ledger.balance(user_id) == 3


# --- jobs -------------------------------------------------------------------------------


async def test_a_job_round_trips(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    job = job_for(user_id)
    async with uows() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    async with uows() as uow:
        assert await uow.jobs.get(job.id) == job
        assert await uow.jobs.get(uuid.uuid4()) is None


async def test_a_job_for_a_user_without_a_profile_is_not_found(
    uows: SqlUnitOfWorkFactory,
) -> None:
    # an insert is checked when it reaches the database: with the next statement, or
    # at the latest with the commit, which then commits nothing
    job = job_for(uuid.uuid4())
    async with uows() as uow:
        with pytest.raises(NotFound):
            await uow.jobs.add(job)
            await uow.commit()
        assert not uow.committed
    async with uows() as uow:
        assert await uow.jobs.get(job.id) is None


async def test_deferred_inserts_are_seen_by_the_statements_after_them(
    uows: SqlUnitOfWorkFactory,
) -> None:
    # a job and its event are sent with the next statement, whether that is compiled
    # (jobs.get) or built per call (list_by_status): both see them
    user_id = await new_user(uows)
    job = job_for(user_id)
    async with uows() as uow:
        await uow.jobs.add(job)
        assert await uow.jobs.get(job.id) == job
        await uow.job_events.add(JobEvent.new(job.id, user_id, JobEventKind.QUEUED, "q", NOW))
        assert [e.job_id for e in await uow.job_events.list_for_job(job.id)] == [job.id]
        assert job.id in [
            j.id for j in await uow.jobs.list_by_status(frozenset({job.status}), limit=1000)
        ]
        await uow.rollback()
        assert await uow.jobs.get(job.id) is None
        await uow.jobs.add(job)  # deferred, then discarded unsent when the unit ends
    async with uows() as uow:
        assert await uow.jobs.get(job.id) is None


async def test_an_update_bumps_the_version_and_keeps_every_field(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = await new_user(uows)
    job = job_for(user_id)
    async with uows() as uow:
        await uow.jobs.add(job)
        dispatched = await uow.jobs.update(job.dispatch("modal", NOW))
        requeued = await uow.jobs.update(
            dispatched.requeue(JobError(FailureReason.INFRASTRUCTURE, "503"), NOW)
        )
        await uow.commit()
    assert (dispatched.version, requeued.version) == (1, 2)
    async with uows() as uow:
        assert await uow.jobs.get(job.id) == requeued


async def test_a_stale_update_is_a_conflict(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    job = job_for(user_id)
    async with uows() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    async with uows() as first, uows() as second:
        seen_first = await first.jobs.get(job.id)
        seen_second = await second.jobs.get(job.id)
        assert seen_first is not None and seen_second is not None
        await first.jobs.update(seen_first.cancel(NOW))
        await first.commit()
        with pytest.raises(ConcurrencyConflict):
            await second.jobs.update(seen_second.dispatch("modal", NOW))


async def test_a_locked_job_waits_for_its_holder(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    job = job_for(user_id)
    async with uows() as uow:
        await uow.jobs.add(job)
        await uow.commit()
    locked = asyncio.Event()

    async def holder() -> None:
        async with uows() as uow:
            current = await uow.jobs.get(job.id, lock=True)
            assert current is not None
            locked.set()
            await asyncio.sleep(0.2)
            await uow.jobs.update(current.dispatch("modal", NOW))
            await uow.commit()

    async def waiter() -> Job | None:
        await locked.wait()
        async with uows() as uow:
            return await uow.jobs.get(job.id, lock=True)

    _, seen = await asyncio.gather(holder(), waiter())
    assert seen is not None and seen.status is JobStatus.DISPATCHED and seen.version == 1


async def test_jobs_are_listed_by_status_oldest_first(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    # far in the past, so they come before whatever other tests left queued
    old = datetime(2001, 1, 1, tzinfo=UTC)
    jobs = [job_for(user_id, created_at=old + timedelta(minutes=m)) for m in (2, 0, 1)]
    async with uows() as uow:
        for job in jobs:
            await uow.jobs.add(job)
        await uow.jobs.update(jobs[0].cancel(NOW))
        queued = await uow.jobs.list_by_status(frozenset({JobStatus.QUEUED}), limit=2)
        assert [j.id for j in queued] == [jobs[1].id, jobs[2].id]
        either = await uow.jobs.list_by_status(
            frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}), limit=3
        )
        assert [j.id for j in either] == [jobs[1].id, jobs[2].id, jobs[0].id]


# --- media ------------------------------------------------------------------------------


def asset(user_id: uuid.UUID, job_id: uuid.UUID, kind: MediaKind, minute: int) -> MediaAsset:
    asset_id = uuid.uuid4()
    return MediaAsset(
        id=asset_id,
        user_id=user_id,
        kind=kind,
        storage_key=f"{user_id}/{asset_id}.{'png' if kind is MediaKind.IMAGE else 'mp4'}",
        content_type="image/png" if kind is MediaKind.IMAGE else "video/mp4",
        width=768,
        height=1024,
        byte_size=123_456,
        prompt="a lighthouse",
        model_id="flux-schnell",
        job_id=job_id,
        created_at=NOW + timedelta(minutes=minute),
        is_public=kind is MediaKind.VIDEO,
        duration_seconds=4.5 if kind is MediaKind.VIDEO else None,
    )


async def test_images_and_videos_are_one_media_repository(
    uows: SqlUnitOfWorkFactory, pg_engine: AsyncEngine
) -> None:
    user_id = await new_user(uows)
    job = job_for(user_id)
    video = asset(user_id, job.id, MediaKind.VIDEO, 1)
    image = asset(user_id, job.id, MediaKind.IMAGE, 0)
    async with uows() as uow:
        await uow.jobs.add(job)
        await uow.media.add(video)
        await uow.media.add(image)
        await uow.commit()
    async with uows() as uow:
        assert await uow.media.get(image.id) == image
        assert await uow.media.get(video.id) == video
        assert await uow.media.get(uuid.uuid4()) is None
        assert await uow.media.list_for_job(job.id) == [image, video]
    async with pg_engine.connect() as conn:
        in_videos = await conn.scalar(
            tables.videos.select()
            .with_only_columns(tables.videos.c.id)
            .where(tables.videos.c.id == video.id)
        )
        assert in_videos == video.id


# --- idempotency ------------------------------------------------------------------------


async def test_an_idempotency_key_is_claimed_by_one_unit_at_a_time(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = await new_user(uows)
    async with uows() as first:
        assert await first.idempotency.try_lock(user_id, "req-1")
        assert await first.idempotency.try_lock(user_id, "req-1")  # its holder may ask again
        async with uows() as second:
            assert not await second.idempotency.try_lock(user_id, "req-1")
            assert await second.idempotency.try_lock(user_id, "req-2")
            assert await second.idempotency.try_lock(uuid.uuid4(), "req-1")
    async with uows() as third:
        assert await third.idempotency.try_lock(user_id, "req-1")


async def test_an_idempotency_record_round_trips_once(uows: SqlUnitOfWorkFactory) -> None:
    user_id = await new_user(uows)
    record = IdempotencyRecord(
        user_id=user_id,
        key="req-1",
        request_hash="abc",
        created_at=NOW,
        response=StoredResponse(202, b'{"job_id": "x"}\x00\xff'),
    )
    # the insert travels with the next statement or the commit; a duplicate in the
    # same unit aborts it there, and nothing of the unit is stored
    async with uows() as uow:
        assert await uow.idempotency.get(user_id, "req-1") is None
        await uow.idempotency.add(record)
        assert await uow.idempotency.get(user_id, "req-1") == record  # sent first
        await uow.idempotency.add(record)
        with pytest.raises(DuplicateEntry, match="already exists"):
            await uow.commit()
        assert not uow.committed
    async with uows() as uow:
        assert await uow.idempotency.get(user_id, "req-1") is None
        await uow.idempotency.add(record)
        await uow.commit()
    async with uows() as uow:
        assert await uow.idempotency.get(user_id, "req-1") == record


# --- engine -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgres://u:p@db.example.com:5432/postgres",
        "postgresql://u:p@db.example.com:5432/postgres",
        "postgresql+psycopg://u:p@db.example.com:5432/postgres",
    ],
)
def test_urls_are_normalised_to_psycopg_3(url: str) -> None:
    assert normalise_url(url) == "postgresql+psycopg://u:p@db.example.com:5432/postgres"


def test_a_url_for_another_database_is_refused() -> None:
    with pytest.raises(ValueError):
        normalise_url("mysql://u@localhost/db")


async def test_a_burst_beyond_the_pool_waits_for_its_connections(pg_url: str) -> None:
    # a fixed pool: twelve concurrent units of work on three connections all finish,
    # and no connection is opened beyond the three (none opened and closed per unit)
    engine = make_engine(pg_url, pool_size=3)
    uows = SqlUnitOfWorkFactory(engine)
    busiest = 0

    async def unit(n: int) -> None:
        nonlocal busiest
        async with uows() as uow:
            busiest = max(busiest, engine.pool.checkedout())  # type: ignore[attr-defined]
            assert await uow.idempotency.try_lock(uuid.uuid4(), f"k{n}")
            await asyncio.sleep(0.02)
            await uow.commit()

    try:
        await asyncio.gather(*(unit(n) for n in range(12)))
        assert busiest == 3
        assert engine.pool.size() == 3 and engine.pool.overflow() <= 0  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_a_light_load_reuses_the_connection_returned_last(pg_url: str) -> None:
    # LIFO: one request at a time keeps being served by the same (warm) backend, not
    # by each pooled connection in turn (docs/performance.md: Postgres's CPU)
    engine = make_engine(pg_url, pool_size=3)

    async def backend(connection: Any) -> int:
        return int((await connection.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one())

    try:
        opened = [await engine.connect() for _ in range(3)]
        pids = [await backend(c) for c in opened]
        assert len(set(pids)) == 3
        for connection in opened:  # checked in in order: the third one last
            await connection.close()
        seen = []
        for _ in range(6):
            async with engine.connect() as connection:
                seen.append(await backend(connection))
        assert seen == [pids[2]] * 6
    finally:
        await engine.dispose()


async def test_a_database_that_is_down_fails_fast() -> None:
    engine = make_engine("postgresql://postgres@127.0.0.1:9/none")
    try:
        # psycopg's error from the pool's checkout (the API answers 503 for both kinds)
        with pytest.raises((psycopg.OperationalError, OperationalError)):
            async with asyncio.timeout(10), SqlUnitOfWork(engine) as uow:
                await uow.profiles.get(uuid.uuid4())
    finally:
        await engine.dispose()


async def _cut_connections(url: str) -> int:
    """Terminate every server connection to ``url``'s database but the caller's."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
        cursor = await admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_pooled_connections_cut_by_the_server_are_replaced(fresh_db: str) -> None:
    # a restart, a failover or Supavisor's idle timeout cuts the pool's connections
    # underneath it: one unit of work may fail (503 to its client), and then the pool
    # checks every connection it holds before handing it out again
    import psycopg

    from genstudio.adapters.supabase.db import liveness

    engine = make_engine(fresh_db, pool_size=3)
    uows = SqlUnitOfWorkFactory(engine)
    user = uuid.uuid4()
    try:
        held = [SqlUnitOfWork(engine) for _ in range(3)]
        for uow in held:  # three connections into the pool
            await uow.__aenter__()
        for uow in held:
            await uow.__aexit__(None, None, None)
        assert await _cut_connections(fresh_db) >= 3

        failed = 0
        for _ in range(3):  # at most one of them fails: it marks the others suspect
            try:
                async with uows() as uow:
                    await uow.profiles.ensure(user, None)
                    await uow.commit()
            except (psycopg.OperationalError, OperationalError):
                failed += 1
        assert failed == 1  # without the check after a loss, all three would
        async with uows() as uow:
            assert await uow.profiles.get(user) is not None

        checker = liveness(engine)
        assert checker is not None
        checker.idle_seconds = 0  # now every connection counts as idle: each is pinged
        assert await _cut_connections(fresh_db) >= 1
        async with uows() as uow:
            assert await uow.profiles.get(user) is not None
    finally:
        await engine.dispose()


@pytest.mark.parametrize("prepared", [True, False])
async def test_prepared_statements_can_be_turned_off_for_transaction_poolers(
    fresh_db: str, prepared: bool
) -> None:
    # behind Supavisor's or PgBouncer's transaction mode, a statement prepared in one
    # transaction may be missing in the next: GENSTUDIO_DB_PREPARED=off never prepares
    engine = make_engine(fresh_db, pool_size=1, prepared=prepared)
    uows = SqlUnitOfWorkFactory(engine)
    user = await new_user(uows, credits=100)
    try:
        for n in range(8):  # the driver prepares a statement at its first use
            async with uows() as uow:
                await place_hold(uow, user_id=user, amount=1, reference=f"job:{n}", now=NOW)
                await uow.commit()
        async with engine.connect() as conn:  # the pool's one connection, used above
            count = (
                await conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements")
            ).scalar_one()
        assert (count > 0) is prepared
        async with uows() as uow:
            assert await uow.ledger.balance(user) == 92
    finally:
        await engine.dispose()


async def test_prepared_statements_outlive_rollbacks_on_their_connection(fresh_db: str) -> None:
    # psycopg answers a ROLLBACK with DEALLOCATE ALL once it has prepared something
    # itself; it never prepares here, so the driver's statements stay valid
    engine = make_engine(fresh_db, pool_size=1)
    uows = SqlUnitOfWorkFactory(engine)
    user = await new_user(uows, credits=10)
    try:
        for n in range(3):
            async with uows() as uow:
                await place_hold(uow, user_id=user, amount=1, reference=f"job:{n}", now=NOW)
                await uow.ledger.entries(user, limit=1)  # built per call: SQLAlchemy's
                await uow.rollback()  # both kinds roll back
                assert await uow.ledger.balance(user) == 10 - n
            async with uows() as uow:  # the same connection: its statements still there
                await place_hold(uow, user_id=user, amount=1, reference=f"job:{n}", now=NOW)
                await uow.commit()
        async with uows() as uow:
            assert await uow.ledger.balance(user) == 7
    finally:
        await engine.dispose()


async def test_statements_deallocated_behind_the_drivers_back_are_prepared_again(
    fresh_db: str,
) -> None:
    # DEALLOCATE ALL (or DISCARD ALL) from elsewhere fails the unit that meets it, and
    # the connection's next unit prepares its statements again
    engine = make_engine(fresh_db, pool_size=1)
    uows = SqlUnitOfWorkFactory(engine)
    user = await new_user(uows, credits=10)
    try:
        async with uows() as uow:
            assert await uow.ledger.balance(user) == 10  # prepared now
        async with engine.connect() as conn:  # the pool's one connection
            await conn.exec_driver_sql("DEALLOCATE ALL")
        async with uows() as uow:
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                await uow.ledger.balance(user)
        async with uows() as uow:  # the same connection, its statements prepared again
            assert await uow.ledger.balance(user) == 10
    finally:
        await engine.dispose()


# --- round trips: what the submission path sends ------------------------------------------


class RoundTrips:
    """Counts the round trips the unit of work makes: each one the driver sends (every
    compiled statement goes through ``Driver._pipelined``), and each statement built
    per call (``SqlConnection.execute``)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from genstudio.adapters.supabase import compiled

        self.count = 0
        self.sqlalchemy = 0
        pipelined, execute = compiled.Driver._pipelined, compiled.SqlConnection.execute

        async def counted_pipeline(driver: compiled.Driver, *a: Any, **kw: Any) -> Any:
            self.count += 1
            return await pipelined(driver, *a, **kw)

        async def counted_execute(conn: compiled.SqlConnection, *a: Any, **kw: Any) -> Any:
            self.count += 1
            self.sqlalchemy += 1
            return await execute(conn, *a, **kw)

        monkeypatch.setattr(compiled.Driver, "_pipelined", counted_pipeline)
        monkeypatch.setattr(compiled.SqlConnection, "execute", counted_execute)


async def test_a_submission_is_two_round_trips_and_its_wake_up(
    uows: SqlUnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # [BEGIN, the key's lock and record, the account's lock and lots] and
    # [the lot, the hold, its entry, the job, the answer to replay, COMMIT]
    from genstudio.adapters.memory.queue import InMemoryJobQueue
    from genstudio.adapters.system import SystemClock
    from genstudio.core.model.pricing import DEFAULT_CATALOG
    from genstudio.core.services.generation.submit import submit_image

    user_id = await new_user(uows, credits=10)
    queue = InMemoryJobQueue()

    async def submit(key: str) -> Any:
        return await submit_image(
            uows,
            queue,
            SystemClock(),
            DEFAULT_CATALOG,
            user_id=user_id,
            email=None,
            model_id="flux-schnell",
            params=ImageParams(prompt="a lighthouse", width=512, height=512),
            idempotency_key=key,
            request_hash="h",
        )

    await submit("warm-up")  # the pool's first connection, the statements' preparation
    trips = RoundTrips(monkeypatch)
    first = await submit("tap-1")
    assert (trips.count, trips.sqlalchemy) == (2, 0)
    assert first.job is not None and queue.enqueued[-1] == first.job_id
    trips.count = 0
    replay = await submit("tap-1")  # a replay: one round trip, then the rollback
    assert replay.replayed and replay.job == first.job
    assert trips.count == 1
    # without the announcement, the account's lock is a round trip of its own
    from genstudio.adapters.supabase.repositories.credits import SqlLedger

    async def unannounced(ledger: SqlLedger, user_id: uuid.UUID) -> None:
        return None

    monkeypatch.setattr(SqlLedger, "will_lock_account", unannounced)
    trips.count = 0
    await submit("tap-2")
    assert trips.count == 3
    async with uows() as uow:  # the warm-up, the first and the last: charged once each
        assert await uow.ledger.balance(user_id) == 10 - 3 * DEFAULT_CATALOG.image_price(
            "flux-schnell", 512, 512, 1
        )


async def test_an_announced_account_lock_is_taken_with_the_next_round_trip(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = await new_user(uows, credits=5)
    async with uows() as holder:
        await holder.ledger.will_lock_account(user_id)
        assert await holder.idempotency.claim(user_id, "tap") == (True, None)
        # the account is locked now, before it is asked for: another unit waits
        async with uows() as other:
            waiting = asyncio.ensure_future(other.ledger.lock_account(user_id))
            await asyncio.sleep(0.2)
            assert not waiting.done()
            profile, lots = await holder.ledger.lock_account_with_lots(user_id)  # answered
            assert profile.credits == 5 and [lot.remaining for lot in lots] == [5]
            await holder.commit()
            assert await asyncio.wait_for(waiting, 5) == 5


async def test_announced_lots_are_read_after_the_lock_was_waited_for(
    uows: SqlUnitOfWorkFactory,
) -> None:
    # the lots come from a statement of their own, after the lock: a change committed
    # by the unit that held the lock is seen
    user_id = await new_user(uows, credits=5)
    async with uows() as first:
        profile, [lot] = await first.ledger.lock_account_with_lots(user_id)
        async with uows() as second:
            await second.ledger.will_lock_account(user_id)
            claimed = asyncio.ensure_future(second.idempotency.claim(user_id, "tap"))
            await asyncio.sleep(0.2)
            assert not claimed.done()  # its round trip waits on the account's lock
            await first.ledger.set_lot_remaining(lot.id, 2)
            await first.ledger.append(entry(user_id, -3, "spend", balance_after=2))
            await first.commit()
            assert await asyncio.wait_for(claimed, 5) == (True, None)
            profile, lots = await second.ledger.lock_account_with_lots(user_id)
            assert profile.credits == 2 and [x.remaining for x in lots] == [2]


async def test_an_announced_lock_for_a_user_without_a_profile_is_not_found_when_asked(
    uows: SqlUnitOfWorkFactory,
) -> None:
    user_id = uuid.uuid4()
    async with uows() as uow:
        await uow.ledger.will_lock_account(user_id)
        assert await uow.idempotency.claim(user_id, "tap") == (True, None)
        with pytest.raises(NotFound):
            await uow.ledger.lock_account_with_lots(user_id)
        await uow.profiles.ensure(user_id, None)
        profile, lots = await uow.ledger.lock_account_with_lots(user_id)  # asked again
        assert profile.id == user_id and lots == []


async def test_a_unit_cancelled_mid_round_trip_leaves_no_broken_connection_behind(
    pg_url: str,
) -> None:
    # a request cancelled while its round trip waits (here: on the account's lock)
    # has unread answers on its connection: it is dropped, not handed to the next unit
    engine = make_engine(pg_url, pool_size=2)
    uows = SqlUnitOfWorkFactory(engine)
    try:
        user_id = await new_user(uows, credits=5)
        async with uows() as holder:
            await holder.ledger.lock_account(user_id)

            async def wait_for_the_lock() -> None:
                async with uows() as uow:
                    await uow.ledger.lock_account(user_id)

            waiting = asyncio.ensure_future(wait_for_the_lock())
            await asyncio.sleep(0.2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await holder.commit()
        for n in range(6):  # every connection the pool hands out works
            async with uows() as uow:
                assert await uow.ledger.lock_account(user_id) == 5
                assert await uow.idempotency.claim(user_id, f"after-{n}") == (True, None)
                await uow.commit()
    finally:
        await engine.dispose()


def test_statement_shapes_are_kept_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from genstudio.adapters.supabase import compiled

    monkeypatch.setattr(compiled, "_SHAPES", {})
    monkeypatch.setattr(compiled, "_MAX_SHAPES", 2)
    shapes = [compiled._shape(f"SELECT %(a)s, %(b)s, %(a)s + {n}", "utf-8") for n in range(4)]
    assert [s.query for s in shapes] == [f"SELECT $1, $2, $1 + {n}".encode() for n in range(4)]
    assert [s.values({"a": 1, "b": 2}) for s in shapes] == [[1, 2]] * 4
    assert len(compiled._SHAPES) == 2  # the rest were worked out for their call only
    assert compiled._shape("SELECT %(a)s, %(b)s, %(a)s + 0", "utf-8") is shapes[0]
    with pytest.raises(psycopg.ProgrammingError, match="missing: b"):
        shapes[0].values({"a": 1})


def test_statement_shapes_number_named_placeholders_as_psycopg_would() -> None:
    # the driver converts SQLAlchemy's %(name)s placeholders itself (psycopg's own
    # conversion is private): %% is a percent sign, and nothing else is taken
    from genstudio.adapters.supabase import compiled

    shape = compiled._Shape("SELECT '100%%', %(x)s || %(y)t, %(x)s LIKE 'a%%'", "utf-8")
    assert shape.query == b"SELECT '100%', $1 || $2, $1 LIKE 'a%'"
    assert shape.order == ["x", "y"]
    for bad in ("SELECT %s", "SELECT %(x)d", "SELECT 5 %", "SELECT %(x)s, %(x)b"):
        with pytest.raises(psycopg.ProgrammingError):
            compiled._Shape(bad, "utf-8")


async def test_errors_that_are_not_refusals_keep_their_psycopg_class(fresh_db: str) -> None:
    # a server error the driver does not map is psycopg's class for its SQLSTATE,
    # with the server's message; the unit of work can only roll back after it
    from sqlalchemy import bindparam, literal_column, select

    from genstudio.adapters.supabase.compiled import Compiled

    engine = make_engine(fresh_db, pool_size=1)
    uows = SqlUnitOfWorkFactory(engine)
    divide = Compiled(select(literal_column("1") / bindparam("n")))
    try:
        async with uows() as uow:
            driver = uow._driver
            assert await driver.one(divide, {"n": 1}) is not None
            with pytest.raises(psycopg.errors.DivisionByZero, match="division by zero"):
                await driver.one(divide, {"n": 0})
    finally:
        await engine.dispose()
