"""The operator's rule list and the users' strikes (migration 0410)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from genstudio.core.model.moderation import Strike
from genstudio.core.model.moderation_rules import ModerationRule


class ModerationRepository(Protocol):
    async def rules_version(self) -> tuple[int, datetime | None]:
        """How many rules there are and the latest ``updated_at`` among them: what a
        cache compares to know whether to reload (a rule added, edited or deleted
        changes one of the two)."""
        ...

    async def rules(self) -> list[ModerationRule]:
        """Every rule, oldest first."""
        ...

    async def add_rule(self, rule: ModerationRule) -> None:
        """Raises DuplicateEntry when a rule with the id exists."""
        ...

    async def delete_rule(self, rule_id: uuid.UUID) -> bool:
        """Whether a rule was deleted."""
        ...

    async def add_strike(self, strike: Strike) -> bool:
        """Record ``strike``; whether it was recorded. False, and nothing written,
        when the user already has a strike with the same (non-null) ``reference``:
        the same refusal met again counts once, also between concurrent writers (the
        second waits for the first and then records nothing)."""
        ...

    async def strikes(self, user_id: uuid.UUID, since: datetime) -> list[Strike]:
        """The user's strikes created at or after ``since``, oldest first."""
        ...
