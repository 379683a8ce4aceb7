"""Store events and spending interleaved at random (core/services/purchases.py on the
memory adapters): packs bought, replayed and refunded, a yearly and a monthly plan
renewing, failing, recovering, refunded, the scheduler's grants, notifications
redelivered, jobs holding and spending credits, time passing.

Invariants after every step:
- balance == sum of the ledger's entries == sum of the lots' remaining credits >= 0;
- every allowance entry has exactly one grant row, and no month is granted twice;
- a clawback never takes more than its purchase granted, partial refunds of a pack
  all together included; a pack's transaction is
  granted once however often it is presented;
- redelivering a notification changes nothing;
- every allowance month granted is a month of a period some payment paid for: news
  that moves a period's end without a payment (Google's grace period and deferrals
  move ``expiryTime``; its snapshots carry no period start) opens no month;
- a renewal refunded before its own news came is never granted, nor entitles (until
  the refund is reversed); refund news older than a reversal already applied (news
  delivered out of order) changes nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import InsufficientCredits
from genstudio.core.model.purchases.products import DEFAULT_PRODUCTS, Store, add_months
from genstudio.core.model.purchases.store_events import (
    WHOLE_SHARE,
    EntitlementStatus,
    Purchase,
    RefundReversal,
    Revocation,
    RevocationReason,
    StoreEvent,
    SubscriptionSnapshot,
)
from genstudio.core.services import credits as credit_svc
from genstudio.core.services.purchases.claims import claim_purchase
from genstudio.core.services.purchases.notifications import handle_notification
from genstudio.core.services.purchases.outcomes import PurchaseOutcome
from genstudio.core.services.purchases.subscriptions import grant_due_allowances
from tests.unit.support import account, open_account, run

T0 = datetime(2026, 1, 15, 9, tzinfo=UTC)
PLANS = {"monthly": "app.genstudio.pro.monthly", "yearly": "app.genstudio.premium.yearly"}


class PurchasesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.factory = InMemoryUnitOfWorkFactory()
        self.user = run(open_account(self.factory))
        self.now = T0
        self.packs: dict[str, int] = {}
        self.plans: dict[
            str, tuple[str, datetime, datetime, int]
        ] = {}  # kind -> (orig, start, end, n)
        self.notifications: list[tuple[str, list[StoreEvent]]] = []
        #: renewals refunded before their own news came (and not reversed since)
        self.refunded_ahead: set[str] = set()
        #: kind -> the start of every allowance month some payment paid for
        self.paid_months: dict[str, set[datetime]] = {}

    # -- helpers --------------------------------------------------------------------------

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

    def notify(self, events: list[StoreEvent]) -> None:
        note_id = str(uuid.uuid4())
        self.notifications.append((note_id, events))
        run(self._notify(note_id, events))

    def balance(self) -> int:
        return run(account(self.factory, self.user)).balance

    def snapshot(
        self, kind: str, status: EntitlementStatus, *, tx: str | None = None
    ) -> SubscriptionSnapshot:
        original, start, end, n = self.plans[kind]
        return SubscriptionSnapshot(
            store=Store.APPLE,
            occurred_at=self.now,
            original_transaction_id=original,
            transaction_id=tx or f"{original}.{n}",
            store_product_id=PLANS[kind],
            user_id=self.user,
            status=status,
            auto_renew=True,
            period_start=start,
            period_end=end,
        )

    # -- rules ----------------------------------------------------------------------------

    @rule(credits=st.sampled_from([100, 550, 1200]), quantity=st.integers(1, 3))
    def buy_pack(self, credits: int, quantity: int) -> None:
        # numbered, not random: the packs a rule samples from are the same when
        # Hypothesis replays a failing run
        tx = f"pack-{len(self.packs):04d}"
        event = Purchase(
            store=Store.APPLE,
            occurred_at=self.now,
            transaction_id=tx,
            original_transaction_id=tx,
            store_product_id=f"app.genstudio.credits.{credits}",
            user_id=self.user,
            purchased_at=self.now,
            quantity=quantity,
        )
        before = self.balance()
        credits *= quantity

        async def claim() -> PurchaseOutcome:
            async with self.factory() as uow:
                out = await claim_purchase(
                    uow, event, user_id=self.user, catalog=DEFAULT_PRODUCTS, now=self.now
                )
                await uow.commit()
                return out

        assert run(claim()).credits_granted == credits
        assert run(claim()).credits_granted == 0  # presented again: the first result
        assert self.balance() == before + credits
        self.packs[tx] = credits

    @precondition(lambda self: bool(self.packs))
    @rule(data=st.data(), reason=st.sampled_from(list(RevocationReason)))
    def refund_pack(self, data: st.DataObject, reason: RevocationReason) -> None:
        self._refund(data.draw(st.sampled_from(sorted(self.packs))), reason)

    @precondition(lambda self: bool(self.packs))
    @rule(
        data=st.data(),
        part=st.one_of(
            st.builds(lambda n: {"revoked_quantity": n}, st.integers(1, 4)),
            st.builds(lambda n: {"revoked_share": n}, st.integers(0, 100_000)),
        ),
    )
    def partially_refund_pack(self, data: st.DataObject, part: dict[str, int]) -> None:
        tx = data.draw(st.sampled_from(sorted(self.packs)))
        self._refund(tx, RevocationReason.REFUND, **part)

    def _refund(self, tx: str, reason: RevocationReason, **part: int) -> None:
        self.notify(
            [
                msgspec.structs.replace(
                    Revocation(
                        store=Store.APPLE,
                        occurred_at=self.now,
                        transaction_id=tx,
                        original_transaction_id=tx,
                        reason=reason,
                    ),
                    **part,
                )
            ]
        )
        entries = run(account(self.factory, self.user)).entries
        taken = -sum(
            e.amount for e in entries if e.kind is EntryKind.CLAWBACK and tx in e.reference
        )
        # all refunds of the pack together, partial or whole, stay within the pack (expired
        # lots may be swept on the way; the clawbacks themselves stay within it)
        assert taken <= self.packs[tx]

    @rule(kind=st.sampled_from(sorted(PLANS)))
    def subscribe_or_renew(self, kind: str) -> None:
        months = 1 if kind == "monthly" else 12
        if kind in self.plans:
            original, _, end, n = self.plans[kind]
            start = max(end, self.now - timedelta(hours=1))
            self.plans[kind] = (original, start, add_months(start, months), n + 1)
        else:
            start = self.now - timedelta(hours=1)
            self.plans[kind] = (f"sub-{uuid.uuid4()}", start, add_months(start, months), 0)
        self.paid_months.setdefault(kind, set()).update(add_months(start, k) for k in range(months))
        self.notify([self.snapshot(kind, EntitlementStatus.ACTIVE)])

    @precondition(lambda self: bool(self.plans))
    @rule(
        data=st.data(),
        days=st.integers(min_value=1, max_value=30),
        status=st.sampled_from([EntitlementStatus.GRACE_PERIOD, EntitlementStatus.ACTIVE]),
    )
    def store_moves_the_period_end(
        self, data: st.DataObject, days: int, status: EntitlementStatus
    ) -> None:
        """A grace period or a deferral, as the Google adapter reads it: the same paid
        transaction, a later end, no period start."""
        kind = data.draw(st.sampled_from(sorted(self.plans)))
        original, start, end, n = self.plans[kind]
        moved = end + timedelta(days=days)
        self.notify(
            [
                msgspec.structs.replace(
                    self.snapshot(kind, status), period_start=None, period_end=moved
                )
            ]
        )
        self.plans[kind] = (original, start, moved, n)

    @precondition(lambda self: bool(self.plans))
    @rule(
        data=st.data(),
        status=st.sampled_from(
            [
                EntitlementStatus.BILLING_RETRY,
                EntitlementStatus.GRACE_PERIOD,
                EntitlementStatus.EXPIRED,
                EntitlementStatus.ACTIVE,
            ]
        ),
    )
    def store_news(self, data: st.DataObject, status: EntitlementStatus) -> None:
        kind = data.draw(st.sampled_from(sorted(self.plans)))
        self.notify([self.snapshot(kind, status)])

    @precondition(lambda self: bool(self.plans))
    @rule(data=st.data(), reason=st.sampled_from(list(RevocationReason)))
    def refund_plan(self, data: st.DataObject, reason: RevocationReason) -> None:
        kind = data.draw(st.sampled_from(sorted(self.plans)))
        original, _, _, n = self.plans[kind]
        # Apple's prorated refund of the payment: its share of the period left
        share = None
        if reason is RevocationReason.REFUND:
            share = data.draw(st.one_of(st.none(), st.integers(0, WHOLE_SHARE)))
        self.notify(
            [
                Revocation(
                    store=Store.APPLE,
                    occurred_at=self.now,
                    transaction_id=f"{original}.{n}",
                    original_transaction_id=original,
                    reason=reason,
                    revoked_share=share,
                )
            ]
        )

    @precondition(lambda self: bool(self.plans))
    @rule(data=st.data())
    def refund_renewal_before_its_news(self, data: st.DataObject) -> None:
        """The store retries a renewal's news for days: its refund can come first."""
        kind = data.draw(st.sampled_from(sorted(self.plans)))
        original, _, _, n = self.plans[kind]
        tx = f"{original}.{n + 1}"
        self.notify(
            [
                Revocation(
                    store=Store.APPLE,
                    occurred_at=self.now,
                    transaction_id=tx,
                    original_transaction_id=original,
                    reason=RevocationReason.REFUND,
                )
            ]
        )
        self.refunded_ahead.add(tx)

    @precondition(lambda self: bool(self.plans))
    @rule(data=st.data(), ahead=st.booleans())
    def refund_news_out_of_order(self, data: st.DataObject, ahead: bool) -> None:
        """A reversal delivered before the refund it reverses, which happened first: the
        refund, arriving last, is stale. Of the current payment, or of one whose own
        news has not come yet."""
        kind = data.draw(st.sampled_from(sorted(self.plans)))
        original, _, _, n = self.plans[kind]
        tx = f"{original}.{n + 1 if ahead else n}"
        self.notify(
            [
                RefundReversal(
                    store=Store.APPLE,
                    occurred_at=self.now + timedelta(minutes=1),
                    transaction_id=tx,
                    original_transaction_id=original,
                )
            ]
        )
        self.refunded_ahead.discard(tx)

        async def state() -> tuple[Any, ...]:
            async with self.factory() as uow:
                return (
                    await uow.ledger.entries(self.user, limit=100_000),
                    await uow.purchases.get_entitlement(Store.APPLE, original),
                    await uow.purchases.grants(Store.APPLE, original),
                )

        before = run(state())
        self.notify(
            [
                Revocation(
                    store=Store.APPLE,
                    occurred_at=self.now,
                    transaction_id=tx,
                    original_transaction_id=original,
                    reason=RevocationReason.REFUND,
                )
            ]
        )
        assert run(state()) == before
        self.now += timedelta(minutes=2)  # later news is later than the reversal

    @precondition(lambda self: bool(self.notifications))
    @rule(data=st.data())
    def redeliver(self, data: st.DataObject) -> None:
        note_id, events = data.draw(st.sampled_from(self.notifications))
        before = run(account(self.factory, self.user))
        run(self._notify(note_id, events))
        after = run(account(self.factory, self.user))
        assert after.entries == before.entries

    @rule(amount=st.integers(min_value=1, max_value=800), settle=st.booleans())
    def spend(self, amount: int, settle: bool) -> None:
        async def go() -> None:
            async with self.factory() as uow:
                hold = await credit_svc.place_hold(
                    uow, user_id=self.user, amount=amount, reference="job", now=self.now
                )
                await uow.commit()
            async with self.factory() as uow:
                if settle:
                    await credit_svc.settle_hold(uow, hold.id, self.now)
                else:
                    await credit_svc.release_hold(uow, hold.id, self.now)
                await uow.commit()

        with contextlib.suppress(InsufficientCredits):
            run(go())

    @rule(days=st.integers(min_value=1, max_value=45))
    def time_passes(self, days: int) -> None:
        self.now += timedelta(days=days)

    @rule()
    def scheduler(self) -> None:
        run(grant_due_allowances(self.factory, catalog=DEFAULT_PRODUCTS, now=self.now))

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def ledger_adds_up(self) -> None:
        acc = run(account(self.factory, self.user))
        assert acc.balance == sum(e.amount for e in acc.entries)
        assert acc.balance == sum(lot.remaining for lot in acc.lots.values())
        assert acc.balance >= 0
        assert all(n == 1 for n in Counter(e.idempotency_key for e in acc.entries).values())

    @invariant()
    def allowances_match_grants(self) -> None:
        async def read() -> tuple[int, int, list[tuple[int, int]]]:
            async with self.factory() as uow:
                entries = await uow.ledger.entries(self.user, limit=100_000)
                grants = []
                for original, *_ in self.plans.values():
                    grants += await uow.purchases.grants(Store.APPLE, original)
                txs = [await uow.purchases.get_transaction(Store.APPLE, tx) for tx in self.packs]
            # a refund reversal gives a clawed-back month back as a new lot of its grant
            allowance = sum(
                1
                for e in entries
                if e.kind is EntryKind.ALLOWANCE and not e.idempotency_key.startswith("reinstate:")
            )
            taken = [(t.clawed_back, t.credits) for t in txs if t is not None]
            granted = len(grants)
            return allowance, granted, taken

        if not self.plans:
            return
        allowance, grants, taken = run(read())
        assert allowance == grants
        assert all(clawed <= credits for clawed, credits in taken)

    @invariant()
    def no_month_gives_back_more_than_it_granted(self) -> None:
        async def read() -> list[tuple[int, int]]:
            async with self.factory() as uow:
                found = []
                for original, *_ in self.plans.values():
                    found += [
                        (g.clawed_back, g.credits)
                        for g in await uow.purchases.grants(Store.APPLE, original)
                    ]
                return found

        assert all(0 <= clawed <= credits for clawed, credits in run(read()))

    @invariant()
    def every_month_granted_was_paid_for(self) -> None:
        async def read() -> dict[str, list[datetime]]:
            async with self.factory() as uow:
                return {
                    kind: [g.month_start for g in await uow.purchases.grants(Store.APPLE, orig)]
                    for kind, (orig, *_) in self.plans.items()
                }

        for kind, starts in run(read()).items():
            assert set(starts) <= self.paid_months[kind], kind

    @invariant()
    def a_renewal_refunded_ahead_earns_nothing(self) -> None:
        async def read() -> tuple[list[str], list[str]]:
            async with self.factory() as uow:
                granted, entitled = [], []
                for original, *_ in self.plans.values():
                    granted += [
                        g.transaction_id for g in await uow.purchases.grants(Store.APPLE, original)
                    ]
                    entitlement = await uow.purchases.get_entitlement(Store.APPLE, original)
                    if entitlement is not None and entitlement.entitled:
                        entitled.append(entitlement.latest_transaction_id)
            return granted, entitled

        granted, entitled = run(read())
        assert not self.refunded_ahead & set(granted)
        assert not self.refunded_ahead & set(entitled)


TestPurchasesMachine = PurchasesMachine.TestCase
TestPurchasesMachine.settings = settings(max_examples=30, stateful_step_count=20, deadline=None)
