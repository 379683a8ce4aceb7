"""``GET /v1/admin/stats``: the business figures as of now (reads only)."""

from __future__ import annotations

from genstudio.core.model.business_stats import WINDOWS, BusinessStats
from genstudio.ports.clock import Clock
from genstudio.ports.unit_of_work import UnitOfWorkFactory


async def business_stats(uow_factory: UnitOfWorkFactory, clock: Clock) -> BusinessStats:
    """Active users, generations per user, conversion to paid, purchases and refunds
    per store, over the last day, week and month (``core.model.business_stats``)."""
    async with uow_factory() as uow:
        return await uow.business_stats.business_stats(now=clock.now(), windows=WINDOWS)
