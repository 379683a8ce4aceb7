"""The credits ledger by example: lots, holds, expiry and refunds (core/credits.py and
core/services/credits.py on the in-memory adapters)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import (
    LOT_KINDS,
    Allocation,
    EntryKind,
    Hold,
    HoldStatus,
    Lot,
    allocate,
    spending_order,
    validate_grant,
)
from genstudio.core.model.errors import (
    IllegalTransition,
    InsufficientCredits,
    InvalidInput,
    NotFound,
)
from genstudio.core.services import credits as svc
from tests.unit.support import account, add, get_hold, hold, open_account, refund, release, settle

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@pytest.fixture
def factory() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


@pytest.fixture
async def user(factory: InMemoryUnitOfWorkFactory) -> uuid.UUID:
    return await open_account(factory)


async def three_lots(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """10 credits that never expire, 10 expiring in a day, 10 expiring in an hour
    (granted in that order, so that the spending order is not the granting order)."""
    forever = await add(factory, user, 10, T0, kind=EntryKind.PURCHASE)
    day = await add(factory, user, 10, T0, kind=EntryKind.GRANT, expires_at=T0 + DAY)
    hour = await add(factory, user, 10, T0, kind=EntryKind.ALLOWANCE, expires_at=T0 + HOUR)
    assert forever.lot_id and day.lot_id and hour.lot_id
    return forever.lot_id, day.lot_id, hour.lot_id


def remaining(lots: dict[uuid.UUID, Lot], lot_id: uuid.UUID) -> int:
    return lots[lot_id].remaining if lot_id in lots else 0


# lots and spending order ------------------------------------------------------


async def test_a_grant_creates_a_lot_and_an_entry_and_raises_the_balance(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    entry = await add(factory, user, 25, T0, kind=EntryKind.ALLOWANCE, expires_at=T0 + DAY)
    state = await account(factory, user)
    assert state.balance == 25
    assert [(e.kind, e.amount, e.balance_after) for e in state.entries] == [
        (EntryKind.ALLOWANCE, 25, 25)
    ]
    assert entry.lot_id is not None
    lot = state.lots[entry.lot_id]
    assert (lot.amount, lot.remaining, lot.source, lot.expires_at) == (
        25,
        25,
        EntryKind.ALLOWANCE,
        T0 + DAY,
    )


async def test_the_soonest_expiring_lot_is_spent_first(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, day, hour = await three_lots(factory, user)
    placed = await hold(factory, user, 15, T0)
    assert placed.allocations == (Allocation(hour, 10), Allocation(day, 5))
    lots = (await account(factory, user)).lots
    assert [remaining(lots, i) for i in (forever, day, hour)] == [10, 5, 0]


async def test_a_lot_that_never_expires_is_spent_last(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, day, hour = await three_lots(factory, user)
    placed = await hold(factory, user, 25, T0)
    assert placed.allocations == (Allocation(hour, 10), Allocation(day, 10), Allocation(forever, 5))
    state = await account(factory, user)
    assert state.balance == 5 == remaining(state.lots, forever)


async def test_a_hold_takes_its_amount_from_the_balance_with_one_hold_entry(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    await three_lots(factory, user)
    placed = await hold(factory, user, 12, T0)
    state = await account(factory, user)
    assert state.balance == 18 == sum(lot.remaining for lot in state.lots.values())
    [entry] = state.of_kind(EntryKind.HOLD)
    assert (entry.amount, entry.hold_id, entry.balance_after) == (-12, placed.id, 18)
    assert placed.status is HoldStatus.OPEN and placed.amount == 12
    assert await get_hold(factory, placed.id) == placed


async def test_a_hold_that_exceeds_the_balance_raises_and_writes_nothing(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    await three_lots(factory, user)
    before = await account(factory, user)
    async with factory() as uow:
        with pytest.raises(InsufficientCredits) as info:
            await svc.place_hold(uow, user_id=user, amount=31, reference="job:x", now=T0)
        await uow.commit()  # even a caller that commits anyway finds nothing written
    assert (info.value.required, info.value.available) == (31, 30)
    assert await account(factory, user) == before


async def test_credits_of_an_expired_lot_cannot_be_held(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    await add(factory, user, 10, T0, kind=EntryKind.ALLOWANCE, expires_at=T0 + HOUR)
    assert (await account(factory, user)).balance == 10, "nothing has swept the lot yet"
    with pytest.raises(InsufficientCredits) as info:
        await hold(factory, user, 1, T0 + HOUR)  # expiry is inclusive
    assert info.value.available == 0


async def test_placing_a_hold_expires_the_lots_that_are_due(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, _, hour = await three_lots(factory, user)
    await hold(factory, user, 3, T0 + 2 * HOUR)
    state = await account(factory, user)
    [expiry] = state.of_kind(EntryKind.EXPIRY)
    assert (expiry.amount, expiry.lot_id) == (-10, hour)
    assert state.balance == 17 == sum(lot.remaining for lot in state.lots.values())
    assert remaining(state.lots, hour) == 0 and remaining(state.lots, forever) == 10


async def test_replaying_a_grant_key_returns_the_first_entry_and_adds_nothing(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    first = await add(factory, user, 10, T0, key="apple:txn-1")
    again = await add(factory, user, 10, T0 + HOUR, key="apple:txn-1")
    assert again == first
    state = await account(factory, user)
    assert state.balance == 10 and len(state.entries) == 1 and len(state.lots) == 1


async def test_grant_credits_creates_the_profile_and_commits_one_lot(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    entry = await svc.grant_credits(
        factory, user_id=user, amount=40, reference="welcome", idempotency_key="op:1", now=T0
    )
    assert entry.kind is EntryKind.GRANT and entry.amount == 40
    assert (await account(factory, user)).balance == 40


async def test_credits_cannot_be_added_to_an_account_that_does_not_exist(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    with pytest.raises(NotFound):
        await add(factory, uuid.uuid4(), 10, T0)


# settle, release, refund --------------------------------------------------------


async def test_settling_a_hold_spends_it_once(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    await three_lots(factory, user)
    placed = await hold(factory, user, 12, T0)
    assert await settle(factory, placed.id, T0 + HOUR) is True
    assert await settle(factory, placed.id, T0 + HOUR) is False
    assert await release(factory, placed.id, T0 + HOUR) is False
    state = await account(factory, user)
    assert state.balance == 18
    [entry] = state.of_kind(EntryKind.SETTLE)
    assert (entry.amount, entry.hold_id) == (0, placed.id)
    assert state.of_kind(EntryKind.RELEASE) == []
    settled = await get_hold(factory, placed.id)
    assert settled is not None
    assert (settled.status, settled.closed_at) == (HoldStatus.SETTLED, T0 + HOUR)


async def test_releasing_a_hold_returns_its_credits_to_the_same_lots(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, day, hour = await three_lots(factory, user)
    placed = await hold(factory, user, 25, T0)
    assert await release(factory, placed.id, T0 + 30 * timedelta(minutes=1)) is True
    state = await account(factory, user)
    assert state.balance == 30
    assert [remaining(state.lots, i) for i in (forever, day, hour)] == [10, 10, 10]
    [entry] = state.of_kind(EntryKind.RELEASE)
    assert (entry.amount, entry.hold_id) == (25, placed.id)


async def test_a_hold_is_released_once(factory: InMemoryUnitOfWorkFactory, user: uuid.UUID) -> None:
    await three_lots(factory, user)
    placed = await hold(factory, user, 5, T0)
    assert await release(factory, placed.id, T0) is True
    assert await release(factory, placed.id, T0) is False
    assert await settle(factory, placed.id, T0) is False
    state = await account(factory, user)
    assert state.balance == 30
    assert len(state.of_kind(EntryKind.RELEASE)) == 1 and state.of_kind(EntryKind.SETTLE) == []
    released = await get_hold(factory, placed.id)
    assert released is not None and released.status is HoldStatus.RELEASED


async def test_releasing_a_hold_whose_lot_expired_meanwhile_expires_those_credits(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, day, hour = await three_lots(factory, user)
    placed = await hold(factory, user, 15, T0)  # 10 from the hour lot, 5 from the day lot
    later = T0 + 2 * HOUR
    assert await release(factory, placed.id, later) is True
    state = await account(factory, user)
    assert state.balance == 20 == sum(lot.remaining for lot in state.lots.values())
    assert [remaining(state.lots, i) for i in (forever, day, hour)] == [10, 10, 0]
    [expiry] = state.of_kind(EntryKind.EXPIRY)
    assert (expiry.amount, expiry.lot_id, expiry.created_at) == (-10, hour, later)


async def test_a_hold_released_after_its_lot_was_swept_still_expires_the_returned_credits(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    forever, _, hour = await three_lots(factory, user)
    first = await hold(factory, user, 4, T0)  # 4 of the hour lot
    await hold(factory, user, 1, T0 + 2 * HOUR)  # sweeps the hour lot's other 6
    assert await release(factory, first.id, T0 + 3 * HOUR) is True
    state = await account(factory, user)
    assert sorted(e.amount for e in state.of_kind(EntryKind.EXPIRY)) == [-6, -4]
    assert remaining(state.lots, hour) == 0
    assert state.balance == 19 == sum(lot.remaining for lot in state.lots.values())
    assert remaining(state.lots, forever) == 10


async def test_a_settled_hold_is_refunded_once_as_a_lot_that_never_expires(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    await add(factory, user, 10, T0, kind=EntryKind.ALLOWANCE, expires_at=T0 + HOUR)
    placed = await hold(factory, user, 8, T0)
    await settle(factory, placed.id, T0)
    first = await refund(factory, placed.id, T0 + DAY)
    again = await refund(factory, placed.id, T0 + DAY)
    assert again == first
    assert (first.kind, first.amount) == (EntryKind.REFUND, 8)
    state = await account(factory, user)
    assert len(state.of_kind(EntryKind.REFUND)) == 1
    assert first.lot_id is not None
    lot = state.lots[first.lot_id]
    assert (lot.remaining, lot.expires_at, lot.source) == (8, None, EntryKind.REFUND)
    assert state.balance == 10  # 2 left in the allowance (unswept) + 8 refunded
    after = await hold(factory, user, 8, T0 + DAY)  # the refund outlives the allowance
    assert after.allocations == (Allocation(first.lot_id, 8),)


@pytest.mark.parametrize("end", ["open", "released"])
async def test_only_a_settled_hold_can_be_refunded(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID, end: str
) -> None:
    await add(factory, user, 10, T0)
    placed = await hold(factory, user, 8, T0)
    if end == "released":
        await release(factory, placed.id, T0)
    before = await account(factory, user)
    with pytest.raises(NotFound) as info:
        await refund(factory, placed.id, T0)
    assert info.value.field == "hold_id"
    assert await account(factory, user) == before


async def test_ending_an_unknown_hold_is_not_found(factory: InMemoryUnitOfWorkFactory) -> None:
    for end in (settle, release, refund):
        with pytest.raises(NotFound):
            await end(factory, uuid.uuid4(), T0)


# pure rules ------------------------------------------------------------------------


def lot(
    amount: int = 10,
    *,
    expires_at: datetime | None = None,
    created_at: datetime = T0,
    remaining: int | None = None,
) -> Lot:
    return Lot(
        id=uuid.uuid4(),
        user_id=uuid.UUID(int=1),
        source=EntryKind.GRANT,
        amount=amount,
        remaining=amount if remaining is None else remaining,
        created_at=created_at,
        expires_at=expires_at,
    )


def test_spending_order_puts_soonest_expiry_first_and_never_expiring_last() -> None:
    old_forever = lot(created_at=T0 - DAY)
    new_forever = lot(created_at=T0)
    soon = lot(expires_at=T0 + HOUR)
    later = lot(expires_at=T0 + DAY)
    shuffled = [new_forever, later, old_forever, soon]
    assert spending_order(shuffled) == [soon, later, old_forever, new_forever]


def test_spending_order_takes_the_older_lot_first_when_expiries_tie() -> None:
    newer = lot(expires_at=T0 + DAY, created_at=T0)
    older = lot(expires_at=T0 + DAY, created_at=T0 - HOUR)
    assert spending_order([newer, older]) == [older, newer]


def test_spending_order_compares_instants_not_wall_clock_readings() -> None:
    # 12:00 at UTC+2 is 10:00 UTC: it expires before 11:00 UTC
    plus_two = timezone(timedelta(hours=2))
    first = lot(expires_at=datetime(2026, 3, 2, 12, 0, tzinfo=plus_two))
    second = lot(expires_at=datetime(2026, 3, 2, 11, 0, tzinfo=UTC))
    assert first.expires_at is not None and second.expires_at is not None
    assert first.expires_at < second.expires_at
    assert spending_order([second, first]) == [first, second]


def test_spending_order_does_not_change_its_argument() -> None:
    lots = [lot(), lot(expires_at=T0 + HOUR)]
    copy = list(lots)
    spending_order(lots)
    assert lots == copy


def test_allocate_takes_only_as_many_lots_as_needed() -> None:
    soon, later, forever = lot(5, expires_at=T0 + HOUR), lot(5, expires_at=T0 + DAY), lot(5)
    assert allocate([forever, later, soon], 5, T0) == (Allocation(soon.id, 5),)
    assert allocate([forever, later, soon], 7, T0) == (
        Allocation(soon.id, 5),
        Allocation(later.id, 2),
    )


def test_allocate_can_take_everything_there_is() -> None:
    lots = [lot(3), lot(4, expires_at=T0 + HOUR)]
    taken = allocate(lots, 7, T0)
    assert sum(a.amount for a in taken) == 7
    assert {a.lot_id for a in taken} == {x.id for x in lots}


def test_allocate_skips_expired_and_empty_lots() -> None:
    expired = lot(50, expires_at=T0)  # expiry is inclusive
    empty = lot(10, remaining=0, expires_at=T0 + HOUR)
    live = lot(10, remaining=4)
    assert allocate([expired, empty, live], 4, T0) == (Allocation(live.id, 4),)
    with pytest.raises(InsufficientCredits) as info:
        allocate([expired, empty, live], 5, T0)
    assert (info.value.required, info.value.available) == (5, 4)


def test_allocate_from_no_lots_is_insufficient() -> None:
    with pytest.raises(InsufficientCredits) as info:
        allocate([], 1, T0)
    assert info.value.available == 0


@pytest.mark.parametrize("amount", [0, -1])
def test_allocate_refuses_an_amount_that_is_not_positive(amount: int) -> None:
    with pytest.raises(InvalidInput) as info:
        allocate([lot()], amount, T0)
    assert info.value.field == "amount"


@pytest.mark.parametrize("kind", sorted(LOT_KINDS))
def test_every_lot_kind_can_grant_a_positive_amount(kind: EntryKind) -> None:
    validate_grant(1, kind)


@pytest.mark.parametrize("kind", sorted(set(EntryKind) - LOT_KINDS))
def test_kinds_that_do_not_create_credits_cannot_grant(kind: EntryKind) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_grant(10, kind)
    assert info.value.field == "kind"


@pytest.mark.parametrize("amount", [0, -5])
def test_a_grant_must_be_positive(amount: int) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_grant(amount, EntryKind.GRANT)
    assert info.value.field == "amount"


async def test_an_invalid_grant_writes_nothing(
    factory: InMemoryUnitOfWorkFactory, user: uuid.UUID
) -> None:
    for amount, kind in ((0, EntryKind.PURCHASE), (5, EntryKind.HOLD)):
        with pytest.raises(InvalidInput):
            await add(factory, user, amount, T0, kind=kind)
    state = await account(factory, user)
    assert (state.balance, state.entries, state.lots) == (0, [], {})


def test_a_hold_closes_once() -> None:
    open_hold = Hold(
        id=uuid.uuid4(),
        user_id=uuid.UUID(int=1),
        amount=3,
        allocations=(Allocation(uuid.uuid4(), 3),),
        status=HoldStatus.OPEN,
        reference="job:x",
        created_at=T0,
    )
    closed = open_hold.close(HoldStatus.SETTLED, T0 + HOUR)
    assert (closed.status, closed.closed_at) == (HoldStatus.SETTLED, T0 + HOUR)
    for status in (HoldStatus.SETTLED, HoldStatus.RELEASED):
        with pytest.raises(IllegalTransition):
            closed.close(status, T0 + DAY)


async def test_opening_an_account_sweeps_its_expired_lots(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    user = await open_account(factory)
    await add(factory, user, 10, T0, kind=EntryKind.ALLOWANCE, expires_at=T0 + HOUR)
    await add(factory, user, 4, T0)
    profile = await svc.open_account(factory, user_id=user, email=None, now=T0 + 2 * HOUR)
    assert profile.credits == 4
    state = await account(factory, user)
    assert state.balance == 4 and [e.amount for e in state.of_kind(EntryKind.EXPIRY)] == [-10]


async def test_opening_a_new_account_creates_an_empty_profile(
    factory: InMemoryUnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    profile = await svc.open_account(factory, user_id=user, email="new@example.com", now=T0)
    assert (profile.id, profile.email, profile.credits) == (user, "new@example.com", 0)
    assert (await account(factory, user)).entries == []


async def test_credits_held_when_their_purchase_is_clawed_back_do_not_revive_on_release() -> None:
    from genstudio.adapters.memory import FakeClock, InMemoryUnitOfWorkFactory
    from genstudio.core.services import credits as svc

    factory, clock = InMemoryUnitOfWorkFactory(), FakeClock()
    user = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user, None)
        bought = await svc.add_credits(
            uow,
            user_id=user,
            amount=10,
            kind=EntryKind.PURCHASE,
            reference="pack",
            idempotency_key="buy",
            now=clock.now(),
        )
        held = await svc.place_hold(uow, user_id=user, amount=4, reference="job", now=clock.now())
        assert bought.lot_id is not None
        taken = await svc.claw_back_lot(
            uow, user_id=user, lot_id=bought.lot_id, reference="refund", now=clock.now()
        )
        await uow.commit()
    assert taken == 6, "only what was neither spent nor held"
    clock.advance(1)
    async with factory() as uow:
        assert await svc.release_hold(uow, held.id, clock.now())
        await uow.commit()
        balance = await uow.ledger.balance(user)
        entries = await uow.ledger.entries(user, limit=20)
    assert balance == 0, "the refunded purchase's held credits expire as they come back"
    # one instant, read back newest first in the order they were written
    assert [e.kind for e in entries][:2] == [EntryKind.EXPIRY, EntryKind.RELEASE]
    assert sum(e.amount for e in entries[:2]) == 0


def test_entry_ids_are_time_ordered_so_one_instant_keeps_its_writing_order() -> None:
    from genstudio.core.model.ids import uuid7

    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids, key=lambda u: u.bytes)
    assert len(set(ids)) == len(ids)
    assert {u.version for u in ids} == {7}


def test_random_ids_are_version_4_and_distinct() -> None:
    from genstudio.core.model.ids import new_id

    ids = [new_id() for _ in range(20_000)]  # several refills of the buffered randomness
    assert len(set(ids)) == len(ids)
    assert {u.version for u in ids} == {4}
    assert {u.variant for u in ids} == {uuid.RFC_4122}


def test_a_forked_child_never_hands_out_the_parents_randomness() -> None:
    """The parent's unused buffered bytes must not be used again in a child: the two
    would then make the same ids (a job id, a hold id) in two processes."""
    import os

    from genstudio.core.model.ids import new_id, random_bytes

    random_bytes(16)  # the buffer is filled and partly unused
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write, new_id().bytes + random_bytes(64))
        finally:
            os._exit(0)
    os.close(write)
    child = b""
    while chunk := os.read(read, 1024):
        child += chunk
    os.close(read)
    os.waitpid(pid, 0)
    parent = new_id().bytes + random_bytes(64)
    assert len(child) == 80
    assert child != parent
    assert child[:16] != parent[:16]


def test_random_bytes_come_whole_or_not_at_all() -> None:
    from genstudio.core.model.ids import random_bytes

    assert len(random_bytes(4096)) == 4096  # a whole refill
    assert [len(random_bytes(100)) for _ in range(50)] == [100] * 50  # across refills
    with pytest.raises(ValueError):
        random_bytes(4097)
