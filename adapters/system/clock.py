from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class SystemClock:
    """The wall clock, in aware UTC; ``sleep`` really waits."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
