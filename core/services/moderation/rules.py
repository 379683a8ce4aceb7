"""The rule-list classifier: the operator's rules from the database, cached in the
process and reloaded without a restart.

Every ``refresh_seconds`` at most, one cheap query (``rules_version``: count and
latest change) tells whether the rules changed; only then are they read and compiled
again. Between checks a text costs no database round trip. A database that cannot be
reached keeps the rules last loaded (and says so in the log); with none loaded yet
the classifier is unavailable.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from genstudio.core.model.moderation import Classification, Surface
from genstudio.core.model.moderation_rules import RuleSet
from genstudio.ports.clock import Clock
from genstudio.ports.moderation import ModerationUnavailable
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.moderation")

EMPTY = Classification()


class RuleListClassifier:
    name = "rules"

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, *, refresh_seconds: float = 10.0
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.refresh_seconds = refresh_seconds
        self._rules: RuleSet | None = None
        self._version: tuple[int, datetime | None] | None = None
        self._checked_at: datetime | None = None
        self._lock = asyncio.Lock()

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        rules = await self.current()
        return rules.classify(text, self.name)

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        return EMPTY  # rules read texts only

    async def current(self) -> RuleSet:
        """The compiled rules, reloaded first if the check is due and they changed.
        Raises ModerationUnavailable when none could ever be loaded."""
        if self._due():
            async with self._lock:  # one reload for the requests that found it due
                if self._due():
                    await self._refresh(self.clock.now())
        if self._rules is None:
            raise ModerationUnavailable("the moderation rules could not be loaded")
        return self._rules

    def _due(self) -> bool:
        if self._checked_at is None:
            return True
        return (self.clock.now() - self._checked_at).total_seconds() >= self.refresh_seconds

    async def _refresh(self, now: datetime) -> None:
        try:
            async with self.uow_factory() as uow:
                version = await uow.moderation.rules_version()
                if version != self._version or self._rules is None:
                    rows = await uow.moderation.rules()
                    rules = RuleSet(rows)
                    for bad in rules.rejected:
                        log.warning("moderation rule %s does not compile; left out", bad.id)
                    self._rules, self._version = rules, version
                    log.info("moderation rules loaded", extra={"rules": len(rules)})
        except Exception:  # the database is away: keep what we have, try again later
            log.exception("moderation rules could not be reloaded; keeping the last ones")
        self._checked_at = now
