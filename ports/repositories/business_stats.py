"""The read side of ``GET /v1/admin/stats``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from genstudio.core.model.business_stats import BusinessStats


class BusinessStatsRepository(Protocol):
    async def business_stats(
        self, *, now: datetime, windows: dict[str, timedelta]
    ) -> BusinessStats:
        """The figures of ``core.model.business_stats`` as of ``now``, one ``Activity``
        per window (in the order given) and ``StoreTotals`` per store that sold or
        refunded anything, per window and for ``"all"`` time (stores in name order,
        then windows in the order given, ``"all"`` last). Reads only."""
        ...
