"""The ledger's invariants under random sequences of grants, holds, settles, releases,
refunds, replays and the passing of time (core/services/credits.py on memory adapters).

A model kept here predicts the balance and where the credits sit. Lots are modelled
by *bucket*, (expires_at, created_at): lots in one bucket are interchangeable (the
spending order cannot tell them apart, and they expire together), so the model does
not depend on how the store breaks ties between them.

Invariants after every step:
- balance == sum of the entries' amounts == sum of the lots' remaining credits (an
  expired lot keeps its remainder until a service sweeps it), and balance >= 0;
- the balance, each bucket's credits and the spendable credits match the model;
- every hold is open, settled or released, as the model says; it has exactly one HOLD
  entry and at most one SETTLE or RELEASE entry, never both;
- entries are append-only: every entry seen before is still there, unchanged; no two
  entries share an idempotency key.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
)

from genstudio.adapters.memory import FakeClock, InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind, Hold, HoldStatus, LedgerEntry
from genstudio.core.model.errors import InsufficientCredits, NotFound
from genstudio.core.services import credits as svc
from tests.unit.support import account, open_account, run

T0 = datetime(2026, 1, 1, tzinfo=UTC)
Bucket = tuple[datetime | None, datetime]  # (expires_at, created_at)


@dataclass
class ModelHold:
    amount: int
    taken: Counter[Bucket]
    status: HoldStatus = HoldStatus.OPEN
    refund: LedgerEntry | None = None


@dataclass
class Model:
    balance: int = 0
    buckets: Counter[Bucket] = field(default_factory=Counter)
    holds: dict[uuid.UUID, ModelHold] = field(default_factory=dict)

    @staticmethod
    def expired(bucket: Bucket, now: datetime) -> bool:
        return bucket[0] is not None and bucket[0] <= now

    def sweep(self, now: datetime) -> None:
        for bucket, credits in self.buckets.items():
            if credits and self.expired(bucket, now):
                self.balance -= credits
                self.buckets[bucket] = 0

    def spendable(self, now: datetime) -> int:
        return sum(c for b, c in self.buckets.items() if not self.expired(b, now))

    def take(self, amount: int, now: datetime) -> Counter[Bucket]:
        """Soonest expiry first, never-expiring last, older first within a tie."""
        order = sorted(
            (b for b, c in self.buckets.items() if c and not self.expired(b, now)),
            key=lambda b: (b[0] is None, b[0] or b[1], b[1]),
        )
        taken: Counter[Bucket] = Counter()
        for bucket in order:
            part = min(amount, self.buckets[bucket])
            if part:
                taken[bucket] = part
                self.buckets[bucket] -= part
                amount -= part
        assert amount == 0
        return taken


class LedgerMachine(RuleBasedStateMachine):
    grant_keys = Bundle("grant_keys")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.factory = InMemoryUnitOfWorkFactory()
        self.clock = FakeClock(T0)
        self.user = run(open_account(self.factory))
        self.model = Model()
        self.first_entries: dict[str, LedgerEntry] = {}
        self.lot_bucket: dict[uuid.UUID, Bucket] = {}
        self.seen: dict[uuid.UUID, LedgerEntry] = {}

    # helpers ----------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def bucket_of(self, hold: Hold) -> Counter[Bucket]:
        taken: Counter[Bucket] = Counter()
        for part in hold.allocations:
            taken[self.lot_bucket[part.lot_id]] += part.amount
        return taken

    def assert_unchanged(self, before: object) -> None:
        assert run(account(self.factory, self.user)) == before

    async def _add(
        self, amount: int, kind: EntryKind, key: str, expires_at: datetime | None
    ) -> LedgerEntry:
        async with self.factory() as uow:
            entry = await svc.add_credits(
                uow,
                user_id=self.user,
                amount=amount,
                kind=kind,
                reference="machine",
                idempotency_key=key,
                now=self.now,
                expires_at=expires_at,
            )
            await uow.commit()
        return entry

    async def _hold(self, amount: int) -> Hold:
        async with self.factory() as uow:
            hold = await svc.place_hold(
                uow, user_id=self.user, amount=amount, reference="job:machine", now=self.now
            )
            await uow.commit()
        return hold

    async def _end(self, hold_id: uuid.UUID, status: HoldStatus) -> bool:
        end = svc.settle_hold if status is HoldStatus.SETTLED else svc.release_hold
        async with self.factory() as uow:
            done = await end(uow, hold_id, self.now)
            await uow.commit()
        return done

    async def _refund(self, hold_id: uuid.UUID) -> LedgerEntry:
        async with self.factory() as uow:
            entry = await svc.refund_settled(uow, hold_id=hold_id, reason="machine", now=self.now)
            await uow.commit()
        return entry

    # rules ------------------------------------------------------------------------

    @rule(
        target=grant_keys,
        kind=st.sampled_from([EntryKind.GRANT, EntryKind.PURCHASE, EntryKind.ALLOWANCE]),
        amount=st.integers(1, 50),
        expires_in=st.none() | st.integers(0, 120),
    )
    def grant(self, kind: EntryKind, amount: int, expires_in: int | None) -> str:
        key = f"grant:{uuid.uuid4()}"
        expires_at = None if expires_in is None else self.now + timedelta(seconds=expires_in)
        entry = run(self._add(amount, kind, key, expires_at))
        self.model.balance += amount
        bucket = (expires_at, self.now)
        self.model.buckets[bucket] += amount
        assert entry.lot_id is not None
        self.lot_bucket[entry.lot_id] = bucket
        assert (entry.kind, entry.amount, entry.idempotency_key) == (kind, amount, key)
        assert entry.balance_after == self.model.balance
        self.first_entries[key] = entry
        return key

    @rule(key=grant_keys, amount=st.integers(1, 50))
    def replaying_a_grant_key_changes_nothing(self, key: str, amount: int) -> None:
        before = run(account(self.factory, self.user))
        entry = run(self._add(amount, EntryKind.GRANT, key, None))
        assert entry == self.first_entries[key]
        self.assert_unchanged(before)

    @rule(target=holds, amount=st.integers(1, 60))
    def place_hold(self, amount: int) -> object:
        if self.model.spendable(self.now) < amount:
            before = run(account(self.factory, self.user))
            try:
                run(self._hold(amount))
            except InsufficientCredits as exc:
                assert exc.required == amount
                assert exc.available == self.model.spendable(self.now)
            else:
                raise AssertionError("a hold beyond the spendable credits was placed")
            self.assert_unchanged(before)
            return multiple()
        hold = run(self._hold(amount))
        self.model.sweep(self.now)
        taken = self.model.take(amount, self.now)
        self.model.balance -= amount
        assert (hold.amount, hold.status, hold.user_id) == (amount, HoldStatus.OPEN, self.user)
        assert self.bucket_of(hold) == taken
        self.model.holds[hold.id] = ModelHold(amount, taken)
        return hold.id

    @rule(hold_id=holds)
    def settle(self, hold_id: uuid.UUID) -> None:
        held = self.model.holds[hold_id]
        before = run(account(self.factory, self.user))
        settled = run(self._end(hold_id, HoldStatus.SETTLED))
        assert settled is (held.status is HoldStatus.OPEN)
        if settled:
            held.status = HoldStatus.SETTLED
        else:
            self.assert_unchanged(before)

    @rule(hold_id=holds)
    def release(self, hold_id: uuid.UUID) -> None:
        held = self.model.holds[hold_id]
        before = run(account(self.factory, self.user))
        released = run(self._end(hold_id, HoldStatus.RELEASED))
        assert released is (held.status is HoldStatus.OPEN)
        if released:
            held.status = HoldStatus.RELEASED
            self.model.buckets.update(held.taken)
            self.model.balance += held.amount
            self.model.sweep(self.now)
        else:
            self.assert_unchanged(before)

    @rule(hold_id=holds)
    def refund(self, hold_id: uuid.UUID) -> None:
        held = self.model.holds[hold_id]
        before = run(account(self.factory, self.user))
        if held.status is not HoldStatus.SETTLED:
            try:
                run(self._refund(hold_id))
            except NotFound:
                pass
            else:
                raise AssertionError(f"a {held.status} hold was refunded")
            self.assert_unchanged(before)
            return
        entry = run(self._refund(hold_id))
        if held.refund is not None:
            assert entry == held.refund
            self.assert_unchanged(before)
            return
        assert (entry.kind, entry.amount) == (EntryKind.REFUND, held.amount)
        assert entry.lot_id is not None
        bucket = (None, self.now)
        self.lot_bucket[entry.lot_id] = bucket
        self.model.buckets[bucket] += held.amount
        self.model.balance += held.amount
        held.refund = entry

    @rule(seconds=st.integers(0, 90))
    def time_passes(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: any(h.status is HoldStatus.OPEN for h in self.model.holds.values()))
    @rule()
    def everything_open_is_released(self) -> None:
        for hold_id, held in self.model.holds.items():
            if held.status is HoldStatus.OPEN:
                self.release(hold_id)

    # invariants ---------------------------------------------------------------------

    @invariant()
    def the_ledger_is_consistent(self) -> None:
        async def read() -> tuple[Any, dict[uuid.UUID, Hold | None]]:
            state = await account(self.factory, self.user)
            async with self.factory() as uow:
                holds = {h: await uow.ledger.get_hold(h) for h in self.model.holds}
            return state, holds

        state, holds = run(read())
        lots = list(state.lots.values())

        assert state.balance == sum(e.amount for e in state.entries)
        assert state.balance == sum(lot.remaining for lot in lots)
        assert state.balance >= 0
        assert state.balance == self.model.balance

        actual: Counter[Bucket] = Counter()
        for lot in lots:
            actual[(lot.expires_at, lot.created_at)] += lot.remaining
        assert +actual == +self.model.buckets
        spendable = sum(lot.remaining for lot in lots if not lot.is_expired(self.now))
        assert spendable == self.model.spendable(self.now)

        by_id = {e.id: e for e in state.entries}
        for entry_id, entry in self.seen.items():
            assert by_id.get(entry_id) == entry, "an entry changed or disappeared"
        self.seen = by_id
        keys = Counter(e.idempotency_key for e in state.entries)
        assert max(keys.values(), default=1) == 1

        for hold_id, held in self.model.holds.items():
            stored = holds[hold_id]
            assert stored is not None and stored.status is held.status
            assert (stored.closed_at is None) is (held.status is HoldStatus.OPEN)
            mine = [e for e in state.entries if e.hold_id == hold_id]
            kinds = Counter(e.kind for e in mine)
            assert kinds[EntryKind.HOLD] == 1
            assert kinds[EntryKind.SETTLE] + kinds[EntryKind.RELEASE] <= 1
            assert kinds[EntryKind.SETTLE] == (held.status is HoldStatus.SETTLED)
            assert kinds[EntryKind.RELEASE] == (held.status is HoldStatus.RELEASED)
            assert set(kinds) <= {EntryKind.HOLD, EntryKind.SETTLE, EntryKind.RELEASE}
            amounts = {e.kind: e.amount for e in mine}
            assert amounts[EntryKind.HOLD] == -held.amount
            assert amounts.get(EntryKind.SETTLE, 0) == 0
            assert amounts.get(EntryKind.RELEASE, held.amount) == held.amount
        assert {e.hold_id for e in state.entries if e.hold_id} <= set(self.model.holds)


LedgerMachine.TestCase.settings = settings(max_examples=50, stateful_step_count=30, deadline=None)
TestLedger = LedgerMachine.TestCase
