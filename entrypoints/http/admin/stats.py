"""``GET /v1/admin/stats`` (service role): the business figures operators watch."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get

from genstudio.core.model.business_stats import BusinessStats
from genstudio.core.services.business_stats import business_stats
from genstudio.entrypoints.http.admin.controller import require_service
from genstudio.entrypoints.http.deps import ClockDep, PrincipalDep, UowFactoryDep


class StatsUsers(msgspec.Struct, rename="camel", kw_only=True):
    total: int  # accounts, erased ones not counted
    paying: int  # bought at least once (Apple Sandbox purchases not counted)
    subscribers: int  # with an entitled subscription now
    conversion: float | None  # paying / total


class StatsActivity(msgspec.Struct, rename="camel", kw_only=True):
    window: str  # day | week | month, each ending now
    since: datetime
    active_users: int
    new_users: int
    generating_users: int
    generations: int  # image, edit and video jobs submitted
    generations_per_user: float | None  # per user who generated
    jobs_by_kind: dict[str, int]
    paying_users: int


class StatsProductCounts(msgspec.Struct, rename="camel", kw_only=True):
    purchases: int
    refunds: int


class StatsStoreTotals(msgspec.Struct, rename="camel", kw_only=True):
    store: str  # apple | google
    window: str  # day | week | month | all
    purchases: int
    subscription_payments: int
    credits_sold: int
    refunds: int
    credits_clawed_back: int
    sandbox_purchases: int
    by_product: dict[str, StatsProductCounts]
    #: ISO 4217 currency -> the price the stores stated for ``purchases``, summed, in
    #: micro-units (1000000 = 1.00 of the currency); Sandbox apart
    revenue_micros: dict[str, int]
    #: currency -> the stated price of the refunded ones among ``refunds``, micro-units
    refunded_micros: dict[str, int]
    priced_purchases: int  # of ``purchases``, with a stated price (in ``revenueMicros``)
    unpriced_purchases: int  # of ``purchases``, without (Google packs, older rows)


class BusinessStatsResponse(msgspec.Struct, rename="camel", kw_only=True):
    at: datetime
    users: StatsUsers
    activity: list[StatsActivity]
    stores: list[StatsStoreTotals]

    @classmethod
    def of(cls, stats: BusinessStats) -> BusinessStatsResponse:
        users = stats.users
        conversion = users.conversion
        return cls(
            at=stats.at,
            users=StatsUsers(
                total=users.total,
                paying=users.paying,
                subscribers=users.subscribers,
                conversion=None if conversion is None else round(conversion, 4),
            ),
            activity=[
                StatsActivity(
                    window=a.window,
                    since=a.since,
                    active_users=a.active_users,
                    new_users=a.new_users,
                    generating_users=a.generating_users,
                    generations=a.generations,
                    generations_per_user=(
                        None if a.generations_per_user is None else round(a.generations_per_user, 3)
                    ),
                    jobs_by_kind=a.jobs_by_kind,
                    paying_users=a.paying_users,
                )
                for a in stats.activity
            ],
            stores=[
                StatsStoreTotals(
                    store=s.store,
                    window=s.window,
                    purchases=s.purchases,
                    subscription_payments=s.subscription_payments,
                    credits_sold=s.credits_sold,
                    refunds=s.refunds,
                    credits_clawed_back=s.credits_clawed_back,
                    sandbox_purchases=s.sandbox_purchases,
                    by_product={
                        p: StatsProductCounts(purchases=c.purchases, refunds=c.refunds)
                        for p, c in s.by_product.items()
                    },
                    revenue_micros=s.revenue_micros,
                    refunded_micros=s.refunded_micros,
                    priced_purchases=s.priced_purchases,
                    unpriced_purchases=s.unpriced_purchases,
                )
                for s in stats.stores
            ],
        )


class StatsController(Controller):
    path = "/v1/admin/stats"
    tags = ["operations"]

    @get(
        "/",
        summary="Active users, generations per user, conversion to paid, purchases, "
        "revenue and refunds per store",
    )
    async def get_business_stats(
        self, principal: PrincipalDep, uow_factory: UowFactoryDep, clock: ClockDep
    ) -> BusinessStatsResponse:
        require_service(principal)
        return BusinessStatsResponse.of(await business_stats(uow_factory, clock))
