"""The UnitOfWork contract (ports/repositories.py), run over every adapter.

The Postgres database is shared by the whole session, so every test works with
fresh user ids and looks only at its own rows.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Protocol

import msgspec
import pytest

from genstudio.core.model.clock import utc
from genstudio.core.model.credits import Allocation, EntryKind, Hold, HoldStatus, LedgerEntry, Lot
from genstudio.core.model.errors import (
    ConcurrencyConflict,
    DuplicateEntry,
    InsufficientCredits,
    NotFound,
)
from genstudio.core.model.idempotency import IdempotencyRecord, StoredResponse
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
WAIT = 0.2  # how long a blocked unit of work is given to (wrongly) get through


class Boom(Exception):
    pass


class ObservedUnitOfWork(UnitOfWork, Protocol):
    """What both adapters also show, for the tests that check a refused commit."""

    @property
    def committed(self) -> bool: ...


class ObservedUnitOfWorkFactory(Protocol):
    def __call__(self) -> ObservedUnitOfWork: ...


async def new_user(factory: UnitOfWorkFactory) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user_id, f"{user_id.hex[:8]}@example.com")
        await uow.commit()
    return user_id


def entry(
    user_id: uuid.UUID,
    amount: int,
    balance_after: int,
    *,
    key: str | None = None,
    at: datetime = T0,
    kind: EntryKind = EntryKind.ADJUSTMENT,
) -> LedgerEntry:
    return LedgerEntry(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=kind,
        amount=amount,
        balance_after=balance_after,
        reference="contract",
        idempotency_key=key or f"k:{uuid.uuid4()}",
        created_at=at,
    )


def lot(user_id: uuid.UUID, amount: int, *, expires_at: datetime | None = None) -> Lot:
    return Lot(
        id=uuid.uuid4(),
        user_id=user_id,
        source=EntryKind.GRANT,
        amount=amount,
        remaining=amount,
        created_at=T0,
        expires_at=expires_at,
        reference="contract",
    )


def job(user_id: uuid.UUID, status: JobStatus = JobStatus.QUEUED, *, at: datetime = T0) -> Job:
    return Job(
        id=uuid.uuid4(),
        user_id=user_id,
        kind=ModelKind.IMAGE,
        model_id="flux-schnell",
        params=ImageParams(prompt="a lighthouse", width=512, height=768, count=2, seed=7),
        cost=4,
        hold_id=None,
        status=status,
        created_at=at,
        updated_at=at,
        priority=5,
    )


def asset(user_id: uuid.UUID, job_id: uuid.UUID | None, *, at: datetime = T0) -> MediaAsset:
    media_id = uuid.uuid4()
    return MediaAsset(
        id=media_id,
        user_id=user_id,
        kind=MediaKind.IMAGE,
        storage_key=f"{user_id}/{media_id}.png",
        content_type="image/png",
        width=512,
        height=768,
        byte_size=1234,
        prompt="a lighthouse",
        model_id="flux-schnell",
        job_id=job_id,
        created_at=at,
    )


async def balance_of(factory: UnitOfWorkFactory, user_id: uuid.UUID) -> int:
    async with factory() as uow:
        return await uow.ledger.balance(user_id)


async def all_entries(factory: UnitOfWorkFactory, user_id: uuid.UUID) -> list[LedgerEntry]:
    async with factory() as uow:
        return await uow.ledger.entries(user_id, limit=10_000)


# transactions -----------------------------------------------------------------------


async def test_nothing_is_visible_to_other_units_without_a_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    async with uow_factory() as writer:
        await writer.profiles.ensure(user, None)
        async with uow_factory() as reader:
            assert await reader.profiles.get(user) is None
    async with uow_factory() as later:
        assert await later.profiles.get(user) is None


async def test_committed_work_is_visible_to_later_units(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    async with uow_factory() as writer:
        created = await writer.profiles.ensure(user, "a@example.com")
        await writer.commit()
    async with uow_factory() as reader:
        assert await reader.profiles.get(user) == created


async def test_a_profile_made_without_an_email_takes_the_first_one_given(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    async with uow_factory() as uow:  # an operator's grant: no email known
        assert (await uow.profiles.ensure(user, None)).email is None
        await uow.commit()
    async with uow_factory() as uow:  # the user's own request carries it
        assert (await uow.profiles.ensure(user, "a@example.com")).email == "a@example.com"
        await uow.commit()
    async with uow_factory() as uow:  # and it stays: a later one does not replace it
        assert (await uow.profiles.ensure(user, "b@example.com")).email == "a@example.com"
        assert (await uow.profiles.ensure(user, None)).email == "a@example.com"
        await uow.commit()
    async with uow_factory() as uow:
        profile = await uow.profiles.get(user)
        assert profile is not None and profile.email == "a@example.com"


async def test_an_exception_rolls_back_what_was_not_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            await uow.profiles.ensure(user, None)
            await uow.commit()
            await uow.ledger.append(entry(user, 10, 10))
            raise Boom
    async with uow_factory() as uow:
        assert await uow.profiles.get(user) is not None, "the committed part stays"
        assert await uow.ledger.balance(user) == 0
        assert await uow.ledger.entries(user, limit=10) == []


async def test_rollback_discards_the_work_so_far_and_the_unit_goes_on(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    kept = entry(user, 3, 3)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 10, 10))
        await uow.rollback()
        assert await uow.ledger.balance(user) == 0
        await uow.ledger.append(kept)
        await uow.commit()
    assert await all_entries(uow_factory, user) == [kept]
    assert await balance_of(uow_factory, user) == 3


async def test_a_unit_of_work_can_commit_twice(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 2, 2))
        await uow.commit()
        await uow.ledger.append(entry(user, 3, 5))
        await uow.commit()
    assert await balance_of(uow_factory, user) == 5


# profiles -----------------------------------------------------------------------------


async def test_ensure_creates_an_empty_free_profile_once(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    async with uow_factory() as uow:
        first = await uow.profiles.ensure(user, "first@example.com")
        assert await uow.profiles.ensure(user, "first@example.com") == first
        await uow.commit()
    assert (first.id, first.email, first.credits) == (user, "first@example.com", 0)
    assert first.subscription_tier is SubscriptionTier.FREE
    assert first.created_at.tzinfo is not None
    async with uow_factory() as uow:
        again = await uow.profiles.ensure(user, "second@example.com")
        await uow.commit()
    assert again == first, "ensure returns the existing profile; it does not overwrite it"


async def test_an_unknown_profile_is_none(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.profiles.get(uuid.uuid4()) is None


# ledger -------------------------------------------------------------------------------


async def test_appending_an_entry_applies_its_amount_to_the_balance(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    grant, spend = entry(user, 10, 10, key="grant"), entry(user, -4, 6, key="spend", at=T0 + SECOND)
    async with uow_factory() as uow:
        assert await uow.ledger.lock_account(user) == 0
        await uow.ledger.append(grant)
        await uow.ledger.append(spend)
        assert await uow.ledger.balance(user) == 6
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.balance(user) == 6
        assert await uow.ledger.lock_account(user) == 6
        assert await uow.ledger.find(user, "grant") == grant
        assert await uow.ledger.find(user, "spend") == spend
        assert await uow.ledger.find(user, "nope") is None
        assert (await uow.profiles.get(user)).credits == 6  # type: ignore[union-attr]


async def test_an_entry_that_would_overdraw_is_refused_and_changes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 5, 5))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(InsufficientCredits) as info:
            await uow.ledger.append(entry(user, -6, -1, key="overdraw"))
        assert (info.value.required, info.value.available) == (6, 5)
        assert await uow.ledger.balance(user) == 5
        assert await uow.ledger.find(user, "overdraw") is None
        await uow.ledger.append(entry(user, -5, 0, key="exact"))  # the unit goes on
        await uow.commit()
    assert await balance_of(uow_factory, user) == 0
    assert [e.idempotency_key for e in await all_entries(uow_factory, user)].count("overdraw") == 0


async def test_a_repeated_idempotency_key_is_a_duplicate_and_the_unit_goes_on(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, other = await new_user(uow_factory), await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 10, 10, key="purchase:1"))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(DuplicateEntry):
            await uow.ledger.append(entry(user, 10, 20, key="purchase:1"))
        assert await uow.ledger.balance(user) == 10
        await uow.ledger.append(entry(user, 7, 17, key="purchase:2"))
        await uow.ledger.append(entry(other, 10, 10, key="purchase:1"))  # keys are per user
        await uow.commit()
    assert await balance_of(uow_factory, user) == 17
    assert await balance_of(uow_factory, other) == 10
    assert len(await all_entries(uow_factory, user)) == 2


async def test_an_entry_whose_balance_after_is_stale_is_refused_and_changes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # a caller that computed balance_after without the account's lock (someone moved
    # the balance in between) must not write a ledger that disagrees with the balance
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 10, 10))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(ConcurrencyConflict):
            await uow.ledger.append(entry(user, -3, 4, key="stale"))
        assert await uow.ledger.balance(user) == 10
        await uow.ledger.append(entry(user, -3, 7, key="fresh"))  # the unit goes on
        await uow.commit()
    assert await balance_of(uow_factory, user) == 7
    assert [e.idempotency_key for e in await all_entries(uow_factory, user)].count("stale") == 0


async def test_a_duplicate_within_one_unit_is_refused_too(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 1, 1, key="same"))
        with pytest.raises(DuplicateEntry):
            await uow.ledger.append(entry(user, 1, 2, key="same"))
        await uow.commit()
    assert await balance_of(uow_factory, user) == 1


async def test_a_deferred_entry_applies_like_an_appended_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 10, 10))
        await uow.ledger.append_deferred(entry(user, -4, 6, key="hold:1"))
        assert await uow.ledger.balance(user) == 6  # a later read sees it
        await uow.ledger.append_deferred(entry(user, -1, 5, key="hold:2"))
        await uow.commit()  # the last one travels with the commit
    assert await balance_of(uow_factory, user) == 5
    keys = {e.idempotency_key for e in await all_entries(uow_factory, user)}
    assert {"hold:1", "hold:2"} <= keys and len(keys) == 3


@pytest.mark.parametrize(
    ("amount", "balance_after", "key", "refusal"),
    [
        (-7, -1, "overdraw", InsufficientCredits),
        (-3, 4, "stale", ConcurrencyConflict),
        (1, 7, "grant:1", DuplicateEntry),
    ],
)
async def test_a_refused_deferred_entry_fails_the_unit_by_its_commit(
    uow_factory: ObservedUnitOfWorkFactory,
    amount: int,
    balance_after: int,
    key: str,
    refusal: type[Exception],
) -> None:
    # the same refusals as ``append``, raised by the call or at the latest by the
    # commit; then nothing of the unit is stored, the writes before it included
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 5, 5, key="grant:1"))
        await uow.commit()
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 1, 6, key="before"))
        with pytest.raises(refusal) as info:
            await uow.ledger.append_deferred(entry(user, amount, balance_after, key=key))
            await uow.commit()
        assert not uow.committed
    if isinstance(info.value, InsufficientCredits):
        assert (info.value.required, info.value.available) == (7, 6)
    assert await balance_of(uow_factory, user) == 5
    assert [e.idempotency_key for e in await all_entries(uow_factory, user)] == ["grant:1"]


async def test_a_deferred_entry_for_a_user_without_a_profile_is_not_found(
    uow_factory: ObservedUnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.append_deferred(entry(uuid.uuid4(), 1, 1))
            await uow.commit()
        assert not uow.committed


async def test_an_announced_account_lock_answers_as_an_unannounced_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    granted = lot(user, 7)
    async with uow_factory() as uow:
        await uow.ledger.add_lot(granted)
        await uow.ledger.append(entry(user, 7, 7, kind=EntryKind.GRANT))
        await uow.commit()
    async with uow_factory() as uow:
        plain = await uow.ledger.lock_account_with_lots(user)
    async with uow_factory() as uow:
        await uow.ledger.will_lock_account(user)
        assert await uow.idempotency.claim(user, "tap") == (True, None)
        announced = await uow.ledger.lock_account_with_lots(user)
        assert announced == plain and [x.remaining for x in announced[1]] == [7]
        assert await uow.ledger.lock_account_with_lots(user) == plain  # asked again


async def test_entries_page_newest_first_without_gaps_or_overlaps(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, other = await new_user(uow_factory), await new_user(uow_factory)
    # several entries share a timestamp, so the id must break the tie
    times = [T0, T0, T0 + SECOND, T0 + SECOND, T0 + SECOND, T0 + 2 * SECOND, T0 + 3 * SECOND]
    made = []
    async with uow_factory() as uow:
        for n, at in enumerate(times, start=1):
            made.append(entry(user, 1, n, at=at))
            await uow.ledger.append(made[-1])
        await uow.ledger.append(entry(other, 1, 1, at=T0 + SECOND))
        await uow.commit()
    expected = sorted(made, key=lambda e: (e.created_at, e.id), reverse=True)

    pages: list[list[LedgerEntry]] = []
    before: tuple[datetime, uuid.UUID] | None = None
    async with uow_factory() as uow:
        while True:
            page = await uow.ledger.entries(user, limit=3, before=before)
            if not page:
                break
            assert len(page) <= 3
            pages.append(page)
            before = (page[-1].created_at, page[-1].id)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [e for p in pages for e in p] == expected
    assert all(utc(e.created_at) == e.created_at for p in pages for e in p)


async def test_lots_round_trip_and_only_lots_with_credits_left_are_listed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, other = await new_user(uow_factory), await new_user(uow_factory)
    forever, expiring = lot(user, 10), lot(user, 5, expires_at=T0 + timedelta(days=30))
    async with uow_factory() as uow:
        await uow.ledger.add_lot(forever)
        await uow.ledger.add_lot(expiring)
        await uow.ledger.add_lot(lot(other, 3))
        await uow.commit()
    async with uow_factory() as uow:
        listed = sorted(await uow.ledger.lots(user), key=lambda x: x.amount)
        assert listed == [expiring, forever]
        assert all(x.expires_at is None or x.expires_at.tzinfo is not None for x in listed)
        await uow.ledger.set_lot_remaining(forever.id, 0)
        await uow.ledger.set_lot_remaining(expiring.id, 2)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.lots(user) == [msgspec.structs.replace(expiring, remaining=2)]
        await uow.ledger.set_lot_remaining(forever.id, 4)
        await uow.commit()
    async with uow_factory() as uow:
        remaining = {x.id: x.remaining for x in await uow.ledger.lots(user)}
    assert remaining == {forever.id: 4, expiring.id: 2}


async def test_an_ended_lot_can_be_reopened_and_never_expires_then(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    bought = lot(user, 10)
    async with uow_factory() as uow:
        await uow.ledger.add_lot(bought)
        await uow.ledger.end_lot(bought.id, T0 + timedelta(seconds=5))
        await uow.commit()
    async with uow_factory() as uow:
        [ended] = await uow.ledger.lots_by_id([bought.id])
        assert ended.expires_at == T0 + timedelta(seconds=5)
        await uow.ledger.reopen_lot(bought.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.lots_by_id([bought.id]) == [bought]  # as it was bought


async def test_lots_are_found_by_id_whatever_they_have_left_and_record_what_they_owe(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    empty, full = lot(user, 10), lot(user, 5)
    async with uow_factory() as uow:
        await uow.ledger.add_lot(empty)
        await uow.ledger.add_lot(full)
        await uow.ledger.set_lot_remaining(empty.id, 0)
        await uow.ledger.set_lot_owed(empty.id, 4)
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.ledger.lots_by_id([empty.id, full.id, uuid.uuid4()])
        assert sorted(found, key=lambda x: x.amount) == [
            full,
            msgspec.structs.replace(empty, remaining=0, owed=4),
        ]
        assert await uow.ledger.lots(user) == [full]  # none left: not listed
        assert await uow.ledger.lots_by_id([]) == []
        with pytest.raises(ValueError):
            await uow.ledger.set_lot_owed(empty.id, -1)
        with pytest.raises(NotFound):
            await uow.ledger.set_lot_owed(uuid.uuid4(), 1)
    async with uow_factory() as uow:
        await uow.ledger.set_lot_owed(empty.id, 0)
        await uow.commit()
    async with uow_factory() as uow:
        assert [x.owed for x in await uow.ledger.lots_by_id([empty.id])] == [0]


async def test_holds_round_trip_and_close_only_while_open(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    source = lot(user, 10)
    hold = Hold(
        id=uuid.uuid4(),
        user_id=user,
        amount=6,
        allocations=(Allocation(source.id, 4), Allocation(uuid.uuid4(), 2)),
        status=HoldStatus.OPEN,
        reference="job:contract",
        created_at=T0,
    )
    async with uow_factory() as uow:
        await uow.ledger.add_lot(source)
        await uow.ledger.add_hold(hold)
        await uow.commit()
    settled = hold.close(HoldStatus.SETTLED, T0 + SECOND)
    async with uow_factory() as uow:
        assert await uow.ledger.get_hold(hold.id) == hold
        await uow.ledger.close_hold(settled)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ledger.get_hold(hold.id) == settled
        with pytest.raises(ConcurrencyConflict):
            await uow.ledger.close_hold(
                msgspec.structs.replace(settled, status=HoldStatus.RELEASED)
            )
        assert await uow.ledger.get_hold(uuid.uuid4()) is None
    async with uow_factory() as uow:
        assert (await uow.ledger.get_hold(hold.id)) == settled


async def test_locking_an_account_without_a_profile_is_not_found(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.lock_account(uuid.uuid4())


async def test_a_locked_account_makes_a_second_locker_wait_and_then_see_the_new_balance(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    order: list[str] = []
    trying = asyncio.Event()

    async def second() -> int:
        async with uow_factory() as uow:
            trying.set()
            balance = await uow.ledger.lock_account(user)
            order.append("second locked")
            return balance

    async with uow_factory() as first:
        assert await first.ledger.lock_account(user) == 0
        task = asyncio.create_task(second())
        await trying.wait()
        await asyncio.sleep(WAIT)
        assert not task.done(), "the second unit got the account while the first held it"
        await first.ledger.append(entry(user, 8, 8))
        order.append("first ends")
        await first.commit()
    assert await asyncio.wait_for(task, 10) == 8
    assert order == ["first ends", "second locked"]


async def test_locking_with_lots_waits_for_the_holder_and_reads_the_lots_it_left(
    uow_factory: UnitOfWorkFactory,
) -> None:
    # the lots must be read after the lock is held (a fresh snapshot), or a hold
    # would allocate credits another unit just took
    user = await new_user(uow_factory)
    lot = Lot(
        id=uuid.uuid4(), user_id=user, source=EntryKind.GRANT, amount=10, remaining=10,
        created_at=T0, reference="grant",
    )  # fmt: skip
    async with uow_factory() as uow:
        await uow.ledger.add_lot(lot)
        await uow.ledger.append(entry(user, 10, 10))
        await uow.commit()
    trying = asyncio.Event()

    async def second() -> tuple[int, list[Lot]]:
        async with uow_factory() as uow:
            trying.set()
            profile, lots = await uow.ledger.lock_account_with_lots(user)
            assert profile.id == user
            return profile.credits, lots

    async with uow_factory() as first:
        profile, lots = await first.ledger.lock_account_with_lots(user)
        assert (profile.id, profile.credits, lots) == (user, 10, [lot])
        task = asyncio.create_task(second())
        await trying.wait()
        await asyncio.sleep(WAIT)
        assert not task.done(), "the second unit got the account while the first held it"
        await first.ledger.set_lot_remaining(lot.id, 3)
        await first.ledger.append(entry(user, -7, 3, key="spend"))
        await first.commit()
    balance, lots = await asyncio.wait_for(task, 10)
    assert (balance, [(x.id, x.remaining) for x in lots]) == (3, [(lot.id, 3)])
    async with uow_factory() as uow:
        with pytest.raises(NotFound):
            await uow.ledger.lock_account_with_lots(uuid.uuid4())


async def test_claiming_a_key_holds_it_and_reads_what_the_last_holder_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    record = IdempotencyRecord(
        user_id=user, key="tap", request_hash="h", created_at=T0, job=job(user)
    )
    async with uow_factory() as holder:
        assert await holder.idempotency.claim(user, "tap") == (True, None)
        assert await holder.idempotency.claim(user, "tap") == (True, None)  # re-entrant
        async with uow_factory() as other:
            assert await other.idempotency.claim(user, "tap") == (False, None)
            assert await other.idempotency.claim(user, "other") == (True, None)
        await holder.idempotency.add(record)
        await holder.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency.claim(user, "tap") == (True, record)


# jobs ------------------------------------------------------------------------------------


async def test_jobs_round_trip(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    queued = job(user)
    finished = msgspec.structs.replace(
        job(user, JobStatus.FAILED),
        attempts=2,
        provider="runpod",
        provider_job_id="rp-1",
        progress=40,
        error=JobError(FailureReason.CONTENT, "refused"),
        asset_ids=(uuid.uuid4(), uuid.uuid4()),
    )
    async with uow_factory() as uow:
        await uow.jobs.add(queued)
        await uow.jobs.add(finished)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.jobs.get(queued.id) == queued
        assert await uow.jobs.get(finished.id) == finished
        assert await uow.jobs.get(uuid.uuid4()) is None


async def test_updating_a_job_bumps_its_version_and_a_stale_update_conflicts(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    original = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(original)
        await uow.commit()
    dispatched = original.dispatch("memory", T0 + SECOND)
    async with uow_factory() as uow:
        stored = await uow.jobs.update(dispatched)
        assert stored == msgspec.structs.replace(dispatched, version=original.version + 1)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.jobs.get(original.id) == stored
        with pytest.raises(ConcurrencyConflict):
            await uow.jobs.update(original.cancel(T0 + 2 * SECOND))  # read before the update
        again = await uow.jobs.update(stored.report_progress(10, T0 + 2 * SECOND))
        assert again.version == original.version + 2
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.jobs.get(original.id) == again


async def test_a_locked_job_makes_a_second_locker_wait_until_the_first_ends(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    original = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(original)
        await uow.commit()
    order: list[str] = []
    trying = asyncio.Event()

    async def second() -> Job | None:
        async with uow_factory() as uow:
            trying.set()
            seen = await uow.jobs.get(original.id, lock=True)
            order.append("second locked")
            return seen

    async with uow_factory() as first:
        locked = await first.jobs.get(original.id, lock=True)
        assert locked == original
        task = asyncio.create_task(second())
        await trying.wait()
        await asyncio.sleep(WAIT)
        assert not task.done(), "the second unit got the job while the first held it"
        updated = await first.jobs.update(original.cancel(T0 + SECOND))
        order.append("first ends")
        await first.commit()
    assert await asyncio.wait_for(task, 10) == updated
    assert order == ["first ends", "second locked"]


async def test_an_unlocked_read_does_not_wait_for_a_lock(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    original = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(original)
        await uow.commit()
    async with uow_factory() as first:
        await first.jobs.get(original.id, lock=True)
        async with uow_factory() as reader:
            assert await asyncio.wait_for(reader.jobs.get(original.id), 5) == original


async def test_jobs_are_listed_by_status(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    made = {s: job(user, s, at=T0 + n * SECOND) for n, s in enumerate(JobStatus)}
    async with uow_factory() as uow:
        for j in made.values():
            await uow.jobs.add(j)
        await uow.commit()
    wanted = frozenset({JobStatus.QUEUED, JobStatus.DISPATCHED, JobStatus.RUNNING})
    async with uow_factory() as uow:
        listed = await uow.jobs.list_by_status(wanted, limit=100_000)
        assert all(j.status in wanted for j in listed)
        mine = {j.id for j in listed if j.user_id == user}
        assert mine == {made[s].id for s in wanted}
        assert len(await uow.jobs.list_by_status(frozenset(JobStatus), limit=2)) == 2
        assert await uow.jobs.list_by_status(frozenset(), limit=10) == []


# media ---------------------------------------------------------------------------------


async def test_when_the_provider_took_the_attempt_survives_a_takeover_and_a_retry_clears_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    original = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(original)
        await uow.commit()
    lease = T0 + 60 * SECOND
    async with uow_factory() as uow:
        dispatched = await uow.jobs.update(original.dispatch("memory", T0, lease_owner="a"))
        assert dispatched.submitted_at is None
        accepted = await uow.jobs.update(dispatched.accepted_by_provider("m-1", T0 + SECOND))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.jobs.get(original.id, lock=True)
        assert stored is not None and stored.submitted_at == T0 + SECOND == accepted.submitted_at
        taken = await uow.jobs.update(stored.leased("b", lease, T0 + 40 * SECOND))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.jobs.get(original.id, lock=True)
        assert stored == taken and stored.submitted_at == T0 + SECOND  # the same work
        error = JobError(FailureReason.TIMEOUT, "no result")
        await uow.jobs.update(stored.requeue(error, T0 + 50 * SECOND))
        await uow.commit()
    async with uow_factory() as uow:
        requeued = await uow.jobs.get(original.id)
        assert requeued is not None and requeued.submitted_at is None  # a new attempt


async def test_a_wake_up_hides_a_due_job_until_it_is_stale_and_forgetting_it_shows_it_again(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    due = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(due)
        await uow.commit()
    now = T0 + 60 * SECOND

    async def needs_one(stale_before: datetime) -> bool:
        async with uow_factory() as uow:
            found = await uow.jobs.needing_wakeup(now=now, stale_before=stale_before, limit=10**6)
        return due.id in {j.id for j in found}

    async def mark(at: datetime | None) -> None:
        async with uow_factory() as uow:
            await uow.jobs.mark_enqueued([due.id], at)
            await uow.commit()

    assert await needs_one(now - 15 * SECOND)  # never woken
    await mark(now)
    assert not await needs_one(now - 15 * SECOND)
    assert await needs_one(now + SECOND)  # woken before ``stale_before``
    await mark(None)  # its wake-up never reached the queue
    assert await needs_one(now - 15 * SECOND)


async def test_a_wake_up_for_the_attempt_before_does_not_hide_a_retry_that_came_due(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The reconciler woke the job, its attempt failed at once and it was put back with
    a 2 s backoff: once the 2 s are over it is woken again, not 15 s after the last
    wake-up."""
    user = await new_user(uow_factory)
    original = job(user)
    async with uow_factory() as uow:
        await uow.jobs.add(original)
        await uow.jobs.mark_enqueued([original.id], T0 + SECOND)  # the reconciler's wake-up
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.jobs.get(original.id, lock=True)
        assert stored is not None
        dispatched = await uow.jobs.update(
            stored.dispatch("memory", T0 + 2 * SECOND, lease_owner="a")
        )
        error = JobError(FailureReason.INFRASTRUCTURE, "the provider failed")
        await uow.jobs.update(dispatched.requeue(error, T0 + 3 * SECOND, retry_at=T0 + 5 * SECOND))
        await uow.commit()

    async def woken(now: datetime) -> bool:
        async with uow_factory() as uow:
            found = await uow.jobs.needing_wakeup(
                now=now, stale_before=now - 15 * SECOND, limit=10**6
            )
        return original.id in {j.id for j in found}

    assert not await woken(T0 + 4 * SECOND)  # backing off
    assert await woken(T0 + 6 * SECOND)  # due again: the last wake-up was for attempt 1
    async with uow_factory() as uow:
        await uow.jobs.mark_enqueued([original.id], T0 + 6 * SECOND)
        await uow.commit()
    assert not await woken(T0 + 7 * SECOND)  # woken for this attempt: not again yet


def unique_priority() -> int:
    """A priority no other test uses: queue stats are grouped by kind and priority, and
    the Postgres database is shared by the session."""
    return 1000 + uuid.uuid4().int % 1_000_000_000


async def test_the_oldest_waiting_job_is_the_longest_due_counted_from_when_it_became_due(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    now = T0 + 1000 * SECOND
    busy, backing_off = unique_priority(), unique_priority()

    def queued(priority: int, created: int, retry_at: int | None = None) -> Job:
        return msgspec.structs.replace(
            job(user, at=now - created * SECOND),
            priority=priority,
            next_attempt_at=None if retry_at is None else now + retry_at * SECOND,
        )

    jobs = [
        queued(busy, created=300, retry_at=60),  # oldest, but waiting out its backoff
        queued(busy, created=200, retry_at=-40),  # a retry due for 40 s
        queued(busy, created=30),  # new, never tried: due since it was made
        msgspec.structs.replace(job(user, JobStatus.RUNNING, at=now - 900 * SECOND), priority=busy),
        queued(backing_off, created=500, retry_at=5),  # nothing of this priority is due
    ]
    async with uow_factory() as uow:
        for j in jobs:
            await uow.jobs.add(j)
        await uow.commit()
    async with uow_factory() as uow:
        stats = await uow.jobs.stats(now=now, windows={"5m": timedelta(minutes=5)})
    depths = {d.priority: d for d in stats.depths if d.priority in (busy, backing_off)}
    assert (depths[busy].queued, depths[busy].due) == (3, 2)
    assert depths[busy].oldest_waiting_seconds == pytest.approx(40.0)
    assert (depths[backing_off].queued, depths[backing_off].due) == (1, 0)
    assert depths[backing_off].oldest_waiting_seconds == 0.0


async def test_media_round_trip_and_are_listed_by_job(uow_factory: UnitOfWorkFactory) -> None:
    user = await new_user(uow_factory)
    one, two = job(user), job(user)
    first, second = asset(user, one.id, at=T0), asset(user, one.id, at=T0 + SECOND)
    elsewhere = asset(user, two.id)
    async with uow_factory() as uow:
        await uow.jobs.add(one)
        await uow.jobs.add(two)
        for a in (second, first, elsewhere):
            await uow.media.add(a)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.media.get(first.id) == first
        assert await uow.media.get(uuid.uuid4()) is None
        assert await uow.media.list_for_job(one.id) == [first, second]
        assert await uow.media.list_for_job(two.id) == [elsewhere]
        assert await uow.media.list_for_job(uuid.uuid4()) == []


# idempotency -----------------------------------------------------------------------------


async def test_an_idempotency_key_is_held_by_one_unit_at_a_time(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as first:
        assert await first.idempotency.try_lock(user, "tap-1") is True
        assert await first.idempotency.try_lock(user, "tap-1") is True, "the holder may ask again"
        async with uow_factory() as second:
            assert await second.idempotency.try_lock(user, "tap-1") is False
            assert await second.idempotency.try_lock(user, "tap-2") is True
            assert await second.idempotency.try_lock(uuid.uuid4(), "tap-1") is True
    async with uow_factory() as third:
        assert await third.idempotency.try_lock(user, "tap-1") is True


async def test_idempotency_records_keep_the_job_as_it_was_submitted(
    uow_factory: ObservedUnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    submitted = msgspec.structs.replace(
        job(user, at=T0 + timedelta(microseconds=123_456)),
        params=ImageParams(prompt="a fox", original_prompt="fox", width=512, height=512),
    )
    record = IdempotencyRecord(
        user_id=user, key="tap-1", request_hash="ab" * 32, created_at=T0, job=submitted
    )
    async with uow_factory() as uow:
        assert await uow.idempotency.get(user, "tap-1") is None
        await uow.idempotency.add(record)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.jobs.add(submitted)  # the job changes afterwards: the record does not
        await uow.jobs.update(submitted.dispatch("memory", T0 + SECOND))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.idempotency.get(user, "tap-1")
        assert stored == record and stored is not None and stored.job == submitted
        assert stored.response is None
        assert await uow.idempotency.get(uuid.uuid4(), "tap-1") is None
    # a stored key is refused: by ``add``, or at the latest by the commit
    async with uow_factory() as uow:
        with pytest.raises(DuplicateEntry):
            await uow.idempotency.add(msgspec.structs.replace(record, request_hash="other"))
            await uow.commit()
        assert not uow.committed
    async with uow_factory() as uow:
        assert await uow.idempotency.get(user, "tap-1") == record


async def test_idempotency_records_from_before_snapshots_replay_byte_for_byte(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    record = IdempotencyRecord(
        user_id=user,
        key="tap-1",
        request_hash="ab" * 32,
        created_at=T0,
        response=StoredResponse(202, b'{"id":"x"}\x00\xff\r\n \xe2\x82'),
    )
    async with uow_factory() as uow:
        await uow.idempotency.add(record)
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.idempotency.get(user, "tap-1")
    assert stored == record and stored is not None and stored.job is None


def test_an_idempotency_record_holds_a_job_or_a_stored_response() -> None:
    user = uuid.uuid4()
    with pytest.raises(ValueError):
        IdempotencyRecord(user_id=user, key="k", request_hash="h", created_at=T0)
    with pytest.raises(ValueError):
        IdempotencyRecord(
            user_id=user,
            key="k",
            request_hash="h",
            created_at=T0,
            job=job(user),
            response=StoredResponse(202, b"{}"),
        )


# uploads ---------------------------------------------------------------------------------


async def test_expected_uploads_stay_until_settled_and_go_stale_oldest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()  # no profile needed: an upload is expected before the submission
    keys = [f"{user}/uploads/{uuid.uuid4()}.png" for _ in range(3)]
    async with uow_factory() as uow:
        await uow.uploads.expect(keys[1], user, T0 + SECOND)
        await uow.uploads.expect(keys[0], user, T0)
        await uow.uploads.expect(keys[2], user, T0 + 2 * SECOND)
        await uow.uploads.expect(keys[0], user, T0 + 5 * SECOND)  # again: the first time counts
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.uploads.stale(T0 + 2 * SECOND, limit=10) == keys[:2]
        assert await uow.uploads.stale(T0 + 3 * SECOND, limit=2) == keys[:2]
        assert await uow.uploads.stale(T0, limit=10) == []
        await uow.uploads.settle([keys[0], "never/expected.png"])
        await uow.rollback()  # the settle is undone
        assert await uow.uploads.stale(T0 + 3 * SECOND, limit=10) == keys
        await uow.uploads.settle(keys[:2])
        await uow.uploads.settle([])
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.uploads.stale(T0 + 3 * SECOND, limit=10) == [keys[2]]
        await uow.uploads.settle([keys[2]])  # leave nothing behind in a shared database
        await uow.commit()


# after commit ----------------------------------------------------------------------------


class Effects:
    """Effects that note when they ran; ``fail`` names those that raise."""

    def __init__(self, *, fail: frozenset[str] = frozenset()) -> None:
        self.ran: list[str] = []
        self.fail = fail

    def __call__(self, name: str):  # type: ignore[no-untyped-def]
        async def effect() -> None:
            self.ran.append(name)
            if name in self.fail:
                raise Boom(name)

        return effect


async def test_effects_run_after_the_commit_in_order_and_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    effects = Effects()
    async with uow_factory() as uow:
        uow.after_commit(effects("first"))
        await uow.profiles.ensure(user, None)
        uow.after_commit(effects("second"))
        assert effects.ran == []
        await uow.commit()
        uow.after_commit(effects("third"))
        await uow.commit()  # a unit may commit again: its effects join the queue
    assert effects.ran == ["first", "second", "third"]
    async with uow_factory() as uow:
        await uow.commit()
    assert effects.ran == ["first", "second", "third"]  # once


async def test_effects_of_a_rolled_back_transaction_are_dropped(
    uow_factory: UnitOfWorkFactory,
) -> None:
    effects = Effects()
    async with uow_factory() as uow:
        uow.after_commit(effects("rolled back"))
        await uow.rollback()
        uow.after_commit(effects("committed"))
        await uow.commit()
    async with uow_factory() as uow:
        uow.after_commit(effects("never committed"))  # the unit ends: it rolls back
    assert effects.ran == ["committed"]


async def test_effects_are_dropped_when_an_exception_ends_the_unit_before_its_commit(
    uow_factory: UnitOfWorkFactory,
) -> None:
    effects = Effects()
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            uow.after_commit(effects("before"))
            raise Boom("the use case failed")
    with pytest.raises(Boom):
        async with uow_factory() as uow:
            uow.after_commit(effects("committed"))
            await uow.commit()
            uow.after_commit(effects("after the commit"))
            raise Boom("the use case failed after its commit")
    assert effects.ran == ["committed"]  # its transaction did commit


async def test_effects_of_a_refused_commit_are_dropped(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await new_user(uow_factory)
    async with uow_factory() as uow:
        await uow.ledger.append(entry(user, 5, 5, key="grant:1"))
        await uow.commit()
    effects = Effects()
    with pytest.raises(DuplicateEntry):
        async with uow_factory() as uow:
            uow.after_commit(effects("refused"))
            # refused by the call, or at the latest by the commit (a deferred write)
            await uow.ledger.append_deferred(entry(user, 1, 6, key="grant:1"))
            await uow.commit()
    assert effects.ran == []


async def test_a_failing_effect_is_logged_not_raised_and_the_others_still_run(
    uow_factory: UnitOfWorkFactory, caplog: pytest.LogCaptureFixture
) -> None:
    effects = Effects(fail=frozenset({"second"}))
    with caplog.at_level(logging.ERROR, logger="genstudio.uow"):
        async with uow_factory() as uow:
            for name in ("first", "second", "third"):
                uow.after_commit(effects(name))
            await uow.commit()
    assert effects.ran == ["first", "second", "third"]
    [failed] = [r for r in caplog.records if r.name == "genstudio.uow"]
    assert failed.exc_info is not None and isinstance(failed.exc_info[1], Boom)
