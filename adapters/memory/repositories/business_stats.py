"""The business figures (``core.model.business_stats``) over the in-memory store: the
reference the SQL adapter is checked against."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from genstudio.adapters.memory.store import _Data, _Repo
from genstudio.core.model.business_stats import (
    GENERATION_KINDS,
    Activity,
    BusinessStats,
    ProductCounts,
    StoreTotals,
    Users,
)
from genstudio.core.model.purchases.entitlements import StoreTransaction, TransactionStatus
from genstudio.core.model.purchases.products import ProductKind
from genstudio.core.model.purchases.store_events import ENTITLED

SANDBOX = "Sandbox"


def _actions(d: _Data) -> Iterator[tuple[uuid.UUID, datetime]]:
    """(user, when) of everything that makes a user active."""
    for job in d.jobs.values():
        yield job.user_id, job.created_at
    for post in d.posts.values():
        yield post.user_id, post.created_at
    for (_, user), at in d.likes.items():
        yield user, at
    for comment in d.comments.values():
        yield comment.user_id, comment.created_at
    for tx in d.store_transactions.values():
        yield tx.user_id, tx.created_at


def _paid(tx: StoreTransaction) -> bool:
    return tx.environment != SANDBOX


def _refunded(tx: StoreTransaction) -> bool:
    """Refunded or revoked, all of it or part (a pack still granted for the rest)."""
    if tx.status in (TransactionStatus.REFUNDED, TransactionStatus.REVOKED):
        return True
    return tx.clawed_back > 0 or tx.refunded_micros is not None


def _refunded_money(tx: StoreTransaction) -> int | None:
    """What the refunds gave back of the stated price: as recorded, or for a row from
    before that was recorded (migration 0520), all of it when refunded in full."""
    if tx.price is None:
        return None
    if tx.refunded_micros is not None:
        return tx.refunded_micros
    return tx.price.amount_micros if tx.status is TransactionStatus.REFUNDED else None


def _by_currency(txs: list[StoreTransaction]) -> dict[str, int]:
    """currency -> the stated prices of ``txs`` summed (the unpriced ones left out)."""
    sums: dict[str, int] = {}
    for t in txs:
        if t.price is not None:
            sums[t.price.currency] = sums.get(t.price.currency, 0) + t.price.amount_micros
    return dict(sorted(sums.items()))


def _refunds_by_currency(txs: list[StoreTransaction]) -> dict[str, int]:
    """currency -> what refunds gave back of ``txs``' stated prices (none left out)."""
    sums: dict[str, int] = {}
    for t in txs:
        money = _refunded_money(t)
        if t.price is not None and money is not None:
            sums[t.price.currency] = sums.get(t.price.currency, 0) + money
    return dict(sorted(sums.items()))


class InMemoryBusinessStats(_Repo):
    async def business_stats(
        self, *, now: datetime, windows: dict[str, timedelta]
    ) -> BusinessStats:
        d = self._d
        live = {p for p in d.profiles if p not in d.erasures}
        actions = [(u, at) for u, at in _actions(d) if u in live]
        activity = []
        for label, span in windows.items():
            since = now - span
            jobs = [
                j
                for j in d.jobs.values()
                if since <= j.created_at <= now and j.rerun_of is None and j.user_id in live
            ]
            generations = [j for j in jobs if j.kind.value in GENERATION_KINDS]
            by_kind: dict[str, int] = {}
            for j in jobs:
                by_kind[j.kind.value] = by_kind.get(j.kind.value, 0) + 1
            activity.append(
                Activity(
                    window=label,
                    since=since,
                    active_users=len({u for u, at in actions if since <= at <= now}),
                    new_users=sum(1 for p in live if since <= d.profiles[p].created_at <= now),
                    generating_users=len({j.user_id for j in generations}),
                    generations=len(generations),
                    jobs_by_kind=dict(sorted(by_kind.items())),
                    paying_users=len(
                        {
                            t.user_id
                            for t in d.store_transactions.values()
                            if _paid(t) and since <= t.created_at <= now and t.user_id in live
                        }
                    ),
                )
            )
        paying = {t.user_id for t in d.store_transactions.values() if _paid(t)} & live
        subscribers = {e.user_id for e in d.entitlements.values() if e.status in ENTITLED}
        users = Users(total=len(live), paying=len(paying), subscribers=len(subscribers & live))
        return BusinessStats(
            at=now, users=users, activity=activity, stores=self._stores(d, now, windows)
        )

    def _stores(self, d: _Data, now: datetime, windows: dict[str, timedelta]) -> list[StoreTotals]:
        spans: list[tuple[str, datetime | None]] = [
            (label, now - span) for label, span in windows.items()
        ]
        spans.append(("all", None))
        txs = list(d.store_transactions.values())
        allowances: dict[tuple[str, str], int] = {}  # a payment's allowances clawed back
        for g in d.allowance_grants.values():
            key = (g.store.value, g.transaction_id)
            allowances[key] = allowances.get(key, 0) + g.clawed_back
        totals = []
        for store in sorted({t.store.value for t in txs}):
            mine = [t for t in txs if t.store.value == store]
            for label, since in spans:

                def within(at: datetime | None, since: datetime | None = since) -> bool:
                    if since is None:
                        return True  # all time: a refund from before its date was kept, too
                    return at is not None and since <= at <= now

                bought = [t for t in mine if _paid(t) and within(t.created_at)]
                refunded = [
                    t for t in mine if _paid(t) and _refunded(t) and within(t.revocation_event_at)
                ]
                products: dict[str, ProductCounts] = {}
                for t in bought:
                    c = products.get(t.product_id, ProductCounts())
                    products[t.product_id] = ProductCounts(
                        purchases=c.purchases + 1, refunds=c.refunds
                    )
                for t in refunded:
                    c = products.get(t.product_id, ProductCounts())
                    products[t.product_id] = ProductCounts(
                        purchases=c.purchases, refunds=c.refunds + 1
                    )
                totals.append(
                    StoreTotals(
                        store=store,
                        window=label,
                        purchases=len(bought),
                        subscription_payments=sum(
                            1 for t in bought if t.kind is ProductKind.SUBSCRIPTION
                        ),
                        credits_sold=sum(
                            t.credits for t in bought if t.kind is ProductKind.CONSUMABLE
                        ),
                        refunds=len(refunded),
                        credits_clawed_back=sum(
                            t.clawed_back + allowances.get((t.store.value, t.transaction_id), 0)
                            for t in refunded
                        ),
                        sandbox_purchases=sum(
                            1 for t in mine if not _paid(t) and within(t.created_at)
                        ),
                        by_product=dict(sorted(products.items())),
                        revenue_micros=_by_currency(bought),
                        refunded_micros=_refunds_by_currency(refunded),
                        priced_purchases=sum(1 for t in bought if t.price is not None),
                        unpriced_purchases=sum(1 for t in bought if t.price is None),
                    )
                )
        return totals
