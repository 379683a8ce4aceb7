"""Partial refunds of multi-item packs (core/services/purchases.py on the memory
adapters): a Revocation names what the store took back *in all so far*, so each
refund claws back the difference with what earlier ones took, never more than the
pack granted, and the same news applied again takes nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.purchases.entitlements import TransactionStatus
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store
from genstudio.core.model.purchases.store_events import (
    WHOLE_SHARE,
    Purchase,
    RefundReversal,
    Revocation,
    RevocationReason,
    StoreEvent,
)
from genstudio.core.services.credits import place_hold, release_hold, settle_hold
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.outcomes import EventOutcome
from tests.unit.support import account, open_account

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
PACK = "app.genstudio.credits.100"


async def _bought(factory: InMemoryUnitOfWorkFactory, quantity: int = 3) -> tuple[uuid.UUID, str]:
    user = await open_account(factory)
    tx = f"t-{uuid.uuid4()}"
    event = Purchase(
        store=Store.APPLE,
        occurred_at=T0,
        transaction_id=tx,
        original_transaction_id=tx,
        store_product_id=PACK,
        user_id=user,
        purchased_at=T0,
        quantity=quantity,
    )
    async with factory() as uow:
        await claim_purchase(uow, event, user_id=user, catalog=DEFAULT_PRODUCTS, now=T0)
        await uow.commit()
    return user, tx


def _refund(tx: str, minutes: int, **part: int) -> Revocation:
    return msgspec.structs.replace(
        Revocation(
            store=Store.APPLE,
            occurred_at=T0 + timedelta(minutes=minutes),
            transaction_id=tx,
            original_transaction_id=tx,
            reason=RevocationReason.REFUND,
        ),
        **part,
    )


async def _apply(factory: InMemoryUnitOfWorkFactory, event: StoreEvent) -> EventOutcome:
    [outcome] = await handle_notification(
        factory,
        store=Store.APPLE,
        notification_id=str(uuid.uuid4()),
        kind="test",
        events=[event],
        catalog=DEFAULT_PRODUCTS,
        now=T0 + timedelta(hours=1),
    )
    return outcome


async def _clawed_back(factory: InMemoryUnitOfWorkFactory, tx: str) -> tuple[int, str]:
    async with factory() as uow:
        found = await uow.purchases.get_transaction(Store.APPLE, tx)
    assert found is not None
    return found.clawed_back, found.status.value


async def test_each_refund_takes_back_the_difference_with_what_earlier_ones_took() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    assert (await _apply(factory, _refund(tx, 1, revoked_quantity=1))).credits == 100
    # the same total again, even as later news: nothing more to take
    assert (await _apply(factory, _refund(tx, 2, revoked_quantity=1))).credits == 0
    assert (await _apply(factory, _refund(tx, 3, revoked_quantity=2))).credits == 100
    assert (await account(factory, user)).balance == 100
    assert await _clawed_back(factory, tx) == (200, TransactionStatus.GRANTED.value)
    # more items than the pack had: the whole pack, never more than it granted
    outcome = await _apply(factory, _refund(tx, 4, revoked_quantity=5))
    assert (outcome.action, outcome.credits) == ("clawed_back:refunded", 100)
    acc = await account(factory, user)
    assert acc.balance == 0 == sum(e.amount for e in acc.entries)
    assert sum(-e.amount for e in acc.of_kind(EntryKind.CLAWBACK)) == 300


async def test_a_share_is_rounded_down_in_the_users_favour() -> None:
    """A refund never claims a fraction of a credit beyond what it refunded: 33.333%
    of 300 credits is 99.999, so 99 (the user keeps the credit Apple's rounding of
    the share leaves in doubt); two thirds in all (66.667%, 200.001) claim 200."""
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    assert (await _apply(factory, _refund(tx, 1, revoked_share=33333))).credits == 99
    assert (await _apply(factory, _refund(tx, 2, revoked_share=66667))).credits == 101
    assert (await account(factory, user)).balance == 100
    outcome = await _apply(factory, _refund(tx, 3, revoked_share=WHOLE_SHARE))
    assert (outcome.action, outcome.credits) == ("clawed_back:refunded", 100)
    assert (await account(factory, user)).balance == 0
    # 50%: exactly half; 50.001% of 300 (150.003) claims nothing more
    user, tx = await _bought(factory)
    assert (await _apply(factory, _refund(tx, 1, revoked_share=50000))).credits == 150
    assert (await _apply(factory, _refund(tx, 2, revoked_share=50001))).credits == 0
    outcome = await _apply(factory, _refund(tx, 3, revoked_share=WHOLE_SHARE))
    assert (outcome.action, outcome.credits) == ("clawed_back:refunded", 150)
    assert (await account(factory, user)).balance == 0


async def _hold(factory: InMemoryUnitOfWorkFactory, user: uuid.UUID, amount: int) -> uuid.UUID:
    async with factory() as uow:
        held = await place_hold(uow, user_id=user, amount=amount, reference="job", now=T0)
        await uow.commit()
    return held.id


async def _end(factory: InMemoryUnitOfWorkFactory, hold_id: uuid.UUID, *, settle: bool) -> bool:
    async with factory() as uow:
        end = settle_hold if settle else release_hold
        done = await end(uow, hold_id, T0 + timedelta(hours=2))
        await uow.commit()
    return done


async def _owed(factory: InMemoryUnitOfWorkFactory, tx: str) -> int:
    async with factory() as uow:
        found = await uow.purchases.get_transaction(Store.APPLE, tx)
        assert found is not None and found.lot_id is not None
        [lot] = await uow.ledger.lots_by_id([found.lot_id])
    return lot.owed


async def test_credits_a_job_held_during_a_partial_refund_are_taken_when_it_releases_them() -> None:
    """The job keeps what it holds; what the refund could not take is owed by the pack's
    lot, and taken from the credits that come back to it when the job fails."""
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    assert (await _apply(factory, _refund(tx, 1, revoked_quantity=1))).credits == 50
    assert await _clawed_back(factory, tx) == (100, TransactionStatus.GRANTED.value)
    assert await _owed(factory, tx) == 50
    assert await _end(factory, held, settle=False)
    acc = await account(factory, user)
    assert acc.balance == 200 == sum(e.amount for e in acc.entries)
    assert [e.amount for e in acc.entries[:2]] == [-50, 250]  # released, then paid
    assert await _owed(factory, tx) == 0
    assert not await _end(factory, held, settle=False)  # released once, paid once
    assert (await account(factory, user)).entries == acc.entries
    # two of three in all: 100 more, not counting the first one's twice
    assert (await _apply(factory, _refund(tx, 2, revoked_quantity=2))).credits == 100
    assert (await account(factory, user)).balance == 100
    assert (await _apply(factory, _refund(tx, 3, revoked_quantity=2))).credits == 0


async def test_a_prorated_refund_while_a_job_holds_the_credits_is_taken_on_release() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    assert (await _apply(factory, _refund(tx, 1, revoked_share=33333))).credits == 50
    await _end(factory, held, settle=False)
    assert (await account(factory, user)).balance == 201  # 99 claimed, rounded down


async def test_a_settled_hold_pays_nothing_of_what_a_partial_refund_could_not_take() -> None:
    """Spent credits stay spent, as with a full refund: the user keeps what the pack
    granted less what was spent and what was refunded, never below nothing."""
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    spent, failed = await _hold(factory, user, 150), await _hold(factory, user, 100)
    assert (await _apply(factory, _refund(tx, 1, revoked_quantity=1))).credits == 50
    assert await _end(factory, spent, settle=True)
    assert (await account(factory, user)).balance == 0
    assert await _owed(factory, tx) == 50  # still owed: the other job may give it back
    assert await _end(factory, failed, settle=False)
    assert (await account(factory, user)).balance == 50 == 300 - 150 - 100
    assert await _owed(factory, tx) == 0

    # all of it spent: what the refund could not take is never taken
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    await _apply(factory, _refund(tx, 1, revoked_quantity=2))
    assert await _end(factory, held, settle=True)
    acc = await account(factory, user)
    assert acc.balance == 0
    assert sum(-e.amount for e in acc.of_kind(EntryKind.CLAWBACK)) == 50


async def test_partial_refunds_while_a_job_holds_the_credits_add_up_to_what_is_owed() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    assert (await _apply(factory, _refund(tx, 1, revoked_quantity=1))).credits == 50
    assert (await _apply(factory, _refund(tx, 2, revoked_quantity=2))).credits == 0
    assert await _owed(factory, tx) == 150
    await _end(factory, held, settle=False)
    assert (await account(factory, user)).balance == 100
    assert await _clawed_back(factory, tx) == (200, TransactionStatus.GRANTED.value)


async def test_a_full_refund_forgives_what_the_partial_ones_left_owed() -> None:
    """The whole pack refunded: the lot ends, and what the job held expires when it
    comes back; the transaction keeps what was taken, for a reversal to give back."""
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    await _apply(factory, _refund(tx, 1, revoked_quantity=1))
    outcome = await _apply(factory, _refund(tx, 2))
    assert (outcome.action, outcome.credits) == ("clawed_back:refunded", 0)
    assert await _owed(factory, tx) == 0
    assert await _clawed_back(factory, tx) == (50, TransactionStatus.REFUNDED.value)
    await _end(factory, held, settle=False)
    acc = await account(factory, user)
    assert acc.balance == 0
    assert sum(-e.amount for e in acc.of_kind(EntryKind.EXPIRY)) == 250


async def test_a_reversal_while_a_job_holds_the_credits_forgives_what_was_owed() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    held = await _hold(factory, user, 250)
    await _apply(factory, _refund(tx, 1, revoked_quantity=1))
    assert (await _apply(factory, _reversal(tx, 2))).credits == 50
    assert await _owed(factory, tx) == 0
    assert await _clawed_back(factory, tx) == (0, TransactionStatus.GRANTED.value)
    await _end(factory, held, settle=False)
    assert (await account(factory, user)).balance == 300


async def test_a_reversal_gives_back_to_a_lot_the_partial_refund_emptied() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    await _end(factory, await _hold(factory, user, 200), settle=True)
    assert (await _apply(factory, _refund(tx, 1, revoked_quantity=1))).credits == 100
    assert (await account(factory, user)).balance == 0
    assert (await _apply(factory, _reversal(tx, 2))).credits == 100
    assert (await account(factory, user)).balance == 100


def _reversal(tx: str, minutes: int) -> RefundReversal:
    return RefundReversal(
        store=Store.APPLE,
        occurred_at=T0 + timedelta(minutes=minutes),
        transaction_id=tx,
        original_transaction_id=tx,
    )


async def test_a_reversal_returns_what_partial_refunds_took_to_the_pack() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    await _apply(factory, _refund(tx, 1, revoked_quantity=2))
    reversal = RefundReversal(
        store=Store.APPLE,
        occurred_at=T0 + timedelta(minutes=2),
        transaction_id=tx,
        original_transaction_id=tx,
    )
    assert (await _apply(factory, reversal)).credits == 200
    assert (await account(factory, user)).balance == 300
    assert await _clawed_back(factory, tx) == (0, TransactionStatus.GRANTED.value)
    # one lot for the pack still: a later full refund takes all of it
    assert (await _apply(factory, _refund(tx, 3))).credits == 300


async def test_a_partial_refund_of_a_pack_the_catalog_cannot_size_takes_nothing() -> None:
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)
    async with factory() as uow:  # a pack whose credits are no multiple of the product's
        found = await uow.purchases.get_transaction(Store.APPLE, tx)
        assert found is not None
        await uow.purchases.update_transaction(msgspec.structs.replace(found, credits=250))
        await uow.commit()
    outcome = await _apply(factory, _refund(tx, 1, revoked_quantity=1))
    assert (outcome.action, outcome.credits) == ("unsized_partial_refund", 0)
    assert (await account(factory, user)).balance == 300


@pytest.mark.parametrize(
    "part",
    [
        {"revoked_quantity": 0},
        {"revoked_share": -1},
        {"revoked_share": WHOLE_SHARE + 1},
        {"revoked_quantity": 1, "revoked_share": 50_000},
    ],
)
def test_a_revocation_names_one_sensible_part(part: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        _refund("t", 0, **part)


async def test_reversing_a_full_refund_gives_back_what_jobs_held_during_it() -> None:
    """A full refund ends the pack's lot, so the credits a job held then expire when the
    job fails; the store reverses the refund: the pack is whole again, those credits
    included, and what a job still holds comes back to it when released."""
    factory = InMemoryUnitOfWorkFactory()
    user, tx = await _bought(factory)  # 300 credits
    released = await _hold(factory, user, 100)
    still_held = await _hold(factory, user, 50)
    outcome = await _apply(factory, _refund(tx, 1))
    assert (outcome.action, outcome.credits) == ("clawed_back:refunded", 150)
    assert await _end(factory, released, settle=False)  # expires on the ended lot
    assert (await account(factory, user)).balance == 0

    reversed_ = await _apply(factory, _reversal(tx, 2))
    assert (reversed_.action, reversed_.credits) == ("reinstated", 250)
    assert (await account(factory, user)).balance == 250
    assert await _end(factory, still_held, settle=False)
    acc = await account(factory, user)
    assert acc.balance == 300 == sum(e.amount for e in acc.entries)
    assert await _clawed_back(factory, tx) == (0, TransactionStatus.GRANTED.value)
    # and a later full refund takes the whole pack again, once
    again = await _apply(factory, _refund(tx, 3))
    assert (again.action, again.credits) == ("clawed_back:refunded", 300)
    assert (await account(factory, user)).balance == 0
