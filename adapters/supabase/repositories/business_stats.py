"""The business figures (``core.model.business_stats``) in SQL: three statements, every
count and sum done by Postgres (windows passed as arrays and joined, ``FILTER``ed
aggregates, the money per currency); Python only shapes the rows. The memory adapter
is the reference, and the contract suite runs the same scenario over both.

Activity reads the last month of jobs, posts, likes, comments and purchases by their
``created_at``: an operator's occasional read, not a hot path (the jobs and purchases
are scanned, the social tables by their user/time indexes where they have them).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from genstudio.adapters.supabase.repositories.rows import _Repository, _utc
from genstudio.core.model.business_stats import (
    GENERATION_KINDS,
    Activity,
    BusinessStats,
    ProductCounts,
    StoreTotals,
    Users,
)
from genstudio.core.model.purchases.store_events import ENTITLED

_WINDOWS = "unnest(CAST(:labels AS text[]), CAST(:sinces AS timestamptz[])) WITH ORDINALITY AS w(label, since, n)"

_USERS = text(
    """
    SELECT
      (SELECT count(*) FROM profiles WHERE erased_at IS NULL) AS total,
      (SELECT count(DISTINCT t.user_id) FROM store_transactions t
         JOIN profiles p ON p.id = t.user_id AND p.erased_at IS NULL
        WHERE t.environment IS DISTINCT FROM 'Sandbox') AS paying,
      (SELECT count(DISTINCT e.user_id) FROM entitlements e
         JOIN profiles p ON p.id = e.user_id AND p.erased_at IS NULL
        WHERE e.status = ANY(CAST(:entitled AS text[]))) AS subscribers
    """
)

_ACTIVITY = text(
    f"""
    WITH acts AS (
      SELECT user_id, created_at AS at FROM jobs WHERE created_at >= :oldest
      UNION ALL SELECT user_id, created_at FROM posts WHERE created_at >= :oldest
      UNION ALL SELECT user_id, created_at FROM likes WHERE created_at >= :oldest
      UNION ALL SELECT user_id, created_at FROM comments WHERE created_at >= :oldest
      UNION ALL SELECT user_id, created_at FROM store_transactions WHERE created_at >= :oldest
    ),
    live_acts AS (
      SELECT a.user_id, a.at FROM acts a
        JOIN profiles p ON p.id = a.user_id AND p.erased_at IS NULL
       WHERE a.at <= :now
    ),
    gens AS (
      SELECT j.user_id, j.kind, j.created_at FROM jobs j
        JOIN profiles p ON p.id = j.user_id AND p.erased_at IS NULL
       WHERE j.created_at >= :oldest AND j.created_at <= :now AND j.rerun_of IS NULL
    )
    SELECT w.label, w.since,
      (SELECT count(DISTINCT user_id) FROM live_acts WHERE at >= w.since) AS active_users,
      (SELECT count(*) FROM profiles
        WHERE erased_at IS NULL AND created_at >= w.since AND created_at <= :now) AS new_users,
      (SELECT count(DISTINCT user_id) FROM gens
        WHERE created_at >= w.since AND kind = ANY(CAST(:generation_kinds AS text[])))
        AS generating_users,
      (SELECT count(*) FROM gens
        WHERE created_at >= w.since AND kind = ANY(CAST(:generation_kinds AS text[])))
        AS generations,
      (SELECT coalesce(jsonb_object_agg(kind, n), '{{}}'::jsonb) FROM
         (SELECT kind, count(*) AS n FROM gens WHERE created_at >= w.since GROUP BY kind) k)
        AS jobs_by_kind,
      (SELECT count(DISTINCT t.user_id) FROM store_transactions t
         JOIN profiles p ON p.id = t.user_id AND p.erased_at IS NULL
        WHERE t.environment IS DISTINCT FROM 'Sandbox'
          AND t.created_at >= w.since AND t.created_at <= :now) AS paying_users
    FROM {_WINDOWS}
    ORDER BY w.n
    """
)

# per store, window ("all": since NULL), product and currency (NULL: unpriced); summed
# per store and window below, the money per currency
_STORES = text(
    f"""
    WITH tx AS (
      SELECT t.*, t.environment IS DISTINCT FROM 'Sandbox' AS paid,
             (t.status IN ('refunded', 'revoked') OR t.clawed_back > 0
              OR t.refunded_micros IS NOT NULL) AS refunded,
             coalesce(t.refunded_micros,
                      CASE WHEN t.status = 'refunded' THEN t.price_micros END) AS money_back,
             t.clawed_back + coalesce(g.clawed, 0) AS clawed
        FROM store_transactions t
        LEFT JOIN (SELECT store, transaction_id, sum(clawed_back) AS clawed
                     FROM allowance_grants GROUP BY store, transaction_id) g
          USING (store, transaction_id)
    )
    SELECT tx.store, w.label, w.n, tx.product_id, tx.currency,
      count(*) FILTER (WHERE bought) AS purchases,
      count(*) FILTER (WHERE bought AND tx.kind = 'subscription') AS subscription_payments,
      coalesce(sum(tx.credits) FILTER (WHERE bought AND tx.kind = 'consumable'), 0)
        AS credits_sold,
      count(*) FILTER (WHERE refund) AS refunds,
      coalesce(sum(tx.clawed) FILTER (WHERE refund), 0) AS credits_clawed_back,
      count(*) FILTER (WHERE NOT tx.paid AND created_within) AS sandbox_purchases,
      count(*) FILTER (WHERE bought AND tx.price_micros IS NOT NULL) AS priced_purchases,
      count(*) FILTER (WHERE bought AND tx.price_micros IS NULL) AS unpriced_purchases,
      coalesce(sum(tx.price_micros) FILTER (WHERE bought), 0) AS revenue_micros,
      count(*) FILTER (WHERE refund AND tx.money_back IS NOT NULL) AS money_refunds,
      coalesce(sum(tx.money_back) FILTER (WHERE refund), 0) AS refunded_micros
    FROM tx
    CROSS JOIN {_WINDOWS}
    CROSS JOIN LATERAL (
      SELECT (w.since IS NULL OR (tx.created_at >= w.since AND tx.created_at <= :now))
               AS created_within,
             (w.since IS NULL OR (tx.revocation_event_at >= w.since
                                  AND tx.revocation_event_at <= :now)) AS refunded_within
    ) AS inside
    CROSS JOIN LATERAL (
      SELECT tx.paid AND inside.created_within AS bought,
             tx.paid AND tx.refunded AND coalesce(inside.refunded_within, false) AS refund
    ) AS f
    GROUP BY tx.store, w.label, w.n, tx.product_id, tx.currency
    ORDER BY tx.store, w.n, tx.product_id, tx.currency
    """
)


class SqlBusinessStats(_Repository):
    async def business_stats(
        self, *, now: datetime, windows: dict[str, timedelta]
    ) -> BusinessStats:
        labels = list(windows)
        sinces = [now - span for span in windows.values()]
        oldest = min(sinces, default=now)
        row = (
            await self._conn.execute(_USERS, {"entitled": sorted(s.value for s in ENTITLED)})
        ).one()
        users = Users(total=row.total, paying=row.paying, subscribers=row.subscribers)
        result = await self._conn.execute(
            _ACTIVITY,
            {
                "labels": labels,
                "sinces": sinces,
                "oldest": oldest,
                "now": now,
                "generation_kinds": sorted(GENERATION_KINDS),
            },
        )
        activity = [
            Activity(
                window=r.label,
                since=_utc(r.since),
                active_users=r.active_users,
                new_users=r.new_users,
                generating_users=r.generating_users,
                generations=r.generations,
                jobs_by_kind=dict(sorted((str(k), int(v)) for k, v in r.jobs_by_kind.items())),
                paying_users=r.paying_users,
            )
            for r in result
        ]
        result = await self._conn.execute(
            _STORES, {"labels": [*labels, "all"], "sinces": [*sinces, None], "now": now}
        )
        return BusinessStats(at=now, users=users, activity=activity, stores=_totals(result))


_SUMMED = (
    "purchases",
    "subscription_payments",
    "credits_sold",
    "refunds",
    "credits_clawed_back",
    "sandbox_purchases",
    "priced_purchases",
    "unpriced_purchases",
)


def _add(sums: dict[str, int], currency: str, amount: int) -> None:
    sums[currency] = sums.get(currency, 0) + amount


def _totals(rows: Any) -> list[StoreTotals]:
    totals: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in rows:
        entry = totals.setdefault(
            (r.store, r.n, r.label),
            {
                **dict.fromkeys(_SUMMED, 0),
                "by_product": {},
                "revenue_micros": {},
                "refunded_micros": {},
            },
        )
        for name in _SUMMED:
            entry[name] += int(getattr(r, name))
        if r.purchases or r.refunds:
            counts = entry["by_product"].get(r.product_id, ProductCounts())
            entry["by_product"][r.product_id] = ProductCounts(
                purchases=counts.purchases + r.purchases, refunds=counts.refunds + r.refunds
            )
        if r.currency is not None and r.purchases:
            _add(entry["revenue_micros"], r.currency, int(r.revenue_micros))
        if r.currency is not None and r.money_refunds:
            _add(entry["refunded_micros"], r.currency, int(r.refunded_micros))
    return [
        StoreTotals(
            store=store,
            window=label,
            **{
                **values,
                "revenue_micros": dict(sorted(values["revenue_micros"].items())),
                "refunded_micros": dict(sorted(values["refunded_micros"].items())),
            },
        )
        for (store, _, label), values in totals.items()
    ]
