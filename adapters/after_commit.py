"""Effects to run after a commit: what both unit-of-work adapters share.

A support module, not an adapter of its own (it implements no port): the memory and
Postgres units of work both keep their ``after_commit`` effects in one of these.
"""

from __future__ import annotations

import logging

from genstudio.ports.unit_of_work import Effect

log = logging.getLogger("genstudio.uow")


class AfterCommit:
    """Effects registered in one unit of work: pending until a commit succeeds, then
    due; due ones run when the unit ends, pending ones are dropped."""

    __slots__ = ("_due", "_pending")

    def __init__(self) -> None:
        self._pending: list[Effect] = []
        self._due: list[Effect] = []

    def add(self, effect: Effect) -> None:
        self._pending.append(effect)

    def committed(self) -> None:
        """The transaction committed: what it registered becomes due."""
        if self._pending:
            self._due.extend(self._pending)
            self._pending.clear()

    def drop(self) -> None:
        """The transaction rolled back (or never committed): forget what it registered."""
        self._pending.clear()

    async def run(self) -> None:
        """Run the due effects in order, each once; a failure is logged, not raised.

        Only ``Exception`` is caught: a cancellation stops the run (what is left is
        lost, as with a process that dies, and the reconciler covers it)."""
        self._pending.clear()
        due, self._due = self._due, []
        for effect in due:
            try:
                await effect()
            except Exception:
                log.exception("an after-commit effect failed", extra={"effect": repr(effect)})
