"""Refunds of credit packs while jobs hold their credits, interleaved at random
(core/services/purchases.py and core/services/credits.py on the memory adapters):
packs of one to three items bought, refunded in part (Google's items, Apple's
prorated share) or whole, refunds reversed, jobs holding credits and succeeding or
failing at any point in between, notifications redelivered.

Invariants after every step:
- balance == sum of the ledger's entries == sum of the lots' remaining credits >= 0;
- every hold ended at most once: one HOLD entry, at most one SETTLE or RELEASE;
- a lot owing credits (``Lot.owed``) has none left;
- a pack still granted has had taken from it what its refunds claimed less what its
  lot still owes; and while no job holds its credits, it keeps what it granted less
  what jobs spent of it and what its refunds claimed, never below nothing: credits a
  job held through a partial refund are taken when the job gives them back, once;
- all refunds of a pack together take no more than it granted.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind, Hold, HoldStatus
from genstudio.core.model.errors import InsufficientCredits
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
from genstudio.core.services import credits as credit_svc
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from tests.unit.support import account, open_account, run

T0 = datetime(2026, 1, 15, 9, tzinfo=UTC)


class PackRefundsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.factory = InMemoryUnitOfWorkFactory()
        self.user = run(open_account(self.factory))
        self.now = T0
        self.packs: dict[str, tuple[int, uuid.UUID]] = {}  # tx -> (credits, its first lot)
        self.jobs: dict[uuid.UUID, tuple[Hold, HoldStatus]] = {}
        self.notifications: list[tuple[str, list[StoreEvent]]] = []

    def tick(self) -> datetime:
        """Store news happens one after the other (news as old as the last is stale)."""
        self.now += timedelta(seconds=1)
        return self.now

    def notify(self, events: list[StoreEvent]) -> None:
        note_id = str(uuid.uuid4())
        self.notifications.append((note_id, events))
        run(self._notify(note_id, events))

    async def _notify(self, note_id: str, events: list[StoreEvent]) -> None:
        await handle_notification(
            self.factory,
            store=Store.APPLE,
            notification_id=note_id,
            kind="test",
            events=events,
            catalog=DEFAULT_PRODUCTS,
            now=self.now,
        )

    # -- rules ----------------------------------------------------------------------------

    @rule(credits=st.sampled_from([100, 550]), quantity=st.integers(1, 3))
    def buy_pack(self, credits: int, quantity: int) -> None:
        tx = f"pack-{uuid.uuid4()}"
        event = Purchase(
            store=Store.APPLE,
            occurred_at=self.tick(),
            transaction_id=tx,
            original_transaction_id=tx,
            store_product_id=f"app.genstudio.credits.{credits}",
            user_id=self.user,
            purchased_at=self.now,
            quantity=quantity,
        )

        async def claim() -> uuid.UUID:
            async with self.factory() as uow:
                await claim_purchase(
                    uow, event, user_id=self.user, catalog=DEFAULT_PRODUCTS, now=self.now
                )
                found = await uow.purchases.get_transaction(Store.APPLE, tx)
                await uow.commit()
            assert found is not None and found.lot_id is not None
            return found.lot_id

        self.packs[tx] = (credits * quantity, run(claim()))

    @precondition(lambda self: bool(self.packs))
    @rule(
        data=st.data(),
        part=st.one_of(
            st.builds(lambda n: {"revoked_quantity": n}, st.integers(1, 4)),
            st.builds(lambda n: {"revoked_share": n}, st.integers(0, WHOLE_SHARE)),
            st.just({}),  # the whole pack
        ),
    )
    def refund_pack(self, data: st.DataObject, part: dict[str, int]) -> None:
        tx = data.draw(st.sampled_from(list(self.packs)))
        self.notify(
            [
                msgspec.structs.replace(
                    Revocation(
                        store=Store.APPLE,
                        occurred_at=self.tick(),
                        transaction_id=tx,
                        original_transaction_id=tx,
                        reason=RevocationReason.REFUND,
                    ),
                    **part,
                )
            ]
        )

    @precondition(lambda self: bool(self.packs))
    @rule(data=st.data())
    def reverse_refund(self, data: st.DataObject) -> None:
        tx = data.draw(st.sampled_from(list(self.packs)))
        self.notify(
            [
                RefundReversal(
                    store=Store.APPLE,
                    occurred_at=self.tick(),
                    transaction_id=tx,
                    original_transaction_id=tx,
                )
            ]
        )

    @precondition(lambda self: bool(self.notifications))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        note_id, events = data.draw(st.sampled_from(self.notifications))
        before = run(account(self.factory, self.user))
        run(self._notify(note_id, events))
        assert run(account(self.factory, self.user)).entries == before.entries

    @rule(amount=st.integers(min_value=1, max_value=900))
    def submit_job(self, amount: int) -> None:
        async def go() -> Hold:
            async with self.factory() as uow:
                hold = await credit_svc.place_hold(
                    uow, user_id=self.user, amount=amount, reference="job", now=self.now
                )
                await uow.commit()
            return hold

        try:
            hold = run(go())
        except InsufficientCredits:
            return
        self.jobs[hold.id] = (hold, HoldStatus.OPEN)

    @precondition(lambda self: bool(self.jobs))
    @rule(data=st.data(), succeeded=st.booleans())
    def end_job(self, data: st.DataObject, succeeded: bool) -> None:
        """A job succeeds or fails; a job that ended already ends again: no change."""
        hold_id = data.draw(st.sampled_from(list(self.jobs)))
        hold, was = self.jobs[hold_id]
        status = HoldStatus.SETTLED if succeeded else HoldStatus.RELEASED
        end = credit_svc.settle_hold if succeeded else credit_svc.release_hold

        async def go() -> bool:
            async with self.factory() as uow:
                done = await end(uow, hold_id, self.now)
                await uow.commit()
            return done

        before = run(account(self.factory, self.user))
        assert run(go()) is (was is HoldStatus.OPEN)
        if was is HoldStatus.OPEN:
            self.jobs[hold_id] = (hold, status)
        else:
            assert run(account(self.factory, self.user)).entries == before.entries

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def ledger_adds_up(self) -> None:
        acc = run(account(self.factory, self.user))
        assert acc.balance == sum(e.amount for e in acc.entries)
        assert acc.balance == sum(lot.remaining for lot in acc.lots.values())
        assert acc.balance >= 0
        assert all(n == 1 for n in Counter(e.idempotency_key for e in acc.entries).values())
        for hold_id in self.jobs:
            kinds = Counter(e.kind for e in acc.entries if e.hold_id == hold_id)
            assert kinds[EntryKind.HOLD] == 1
            assert kinds[EntryKind.SETTLE] + kinds[EntryKind.RELEASE] <= 1

    @invariant()
    def packs_keep_what_was_paid_for_and_not_spent(self) -> None:
        async def read() -> None:
            async with self.factory() as uow:
                entries = await uow.ledger.entries(self.user, limit=100_000)
                lots = {x.id: x for x in await uow.ledger.lots_by_id(self.first_lots())}
                for tx, (credits, first_lot) in self.packs.items():
                    found = await uow.purchases.get_transaction(Store.APPLE, tx)
                    assert found is not None
                    # what refunds took (clawed back, or expired on the lot a refund
                    # ended: a pack's lot expires no other way), net of what reversals
                    # gave back to it (the pack's own purchase entry is the first of its
                    # kind on it)
                    lost = (EntryKind.CLAWBACK, EntryKind.EXPIRY, EntryKind.PURCHASE)
                    taken = credits - sum(
                        e.amount for e in entries if e.lot_id == first_lot and e.kind in lost
                    )
                    assert 0 <= taken <= credits
                    lot = lots[first_lot]
                    assert lot.owed == 0 or lot.remaining == 0
                    if found.status is not TransactionStatus.GRANTED or found.lot_id != lot.id:
                        continue  # refunded whole, or reinstated as a new lot
                    moved = sum(e.amount for e in entries if e.lot_id == lot.id and e.kind in lost)
                    assert lot.amount - moved == found.clawed_back - lot.owed
                    parts = [
                        (p.amount, status)
                        for hold, status in self.jobs.values()
                        for p in hold.allocations
                        if p.lot_id == lot.id
                    ]
                    if all(status is not HoldStatus.OPEN for _, status in parts):
                        spent = sum(n for n, status in parts if status is HoldStatus.SETTLED)
                        kept = max(0, lot.amount - spent - found.clawed_back)
                        assert lot.remaining == kept, (lot, spent, found.clawed_back)

        run(read())

    def first_lots(self) -> list[uuid.UUID]:
        return [lot for _, lot in self.packs.values()]


TestPackRefundsMachine = PackRefundsMachine.TestCase
TestPackRefundsMachine.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
