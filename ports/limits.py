"""Counting requests against rate budgets (genstudio.core.model.limits)."""

from __future__ import annotations

from typing import Protocol

from genstudio.core.model.limits import Budget, Usage


class RateCounter(Protocol):
    """Requests counted per key in a moving window, shared by every process that
    uses the same store (Redis), or by one process (in memory)."""

    async def hit(self, key: str, budget: Budget) -> Usage:
        """Count one request for ``key`` if the budget has room in the window ending
        now (then ``allowed``), else count nothing. Concurrent hits never admit more
        than ``budget.amount`` in a window. Raises ``ConnectionError`` (or a subclass)
        when the store cannot be reached."""
        ...

    async def peek(self, key: str, budget: Budget) -> Usage:
        """What :meth:`hit` would answer, counting nothing."""
        ...
