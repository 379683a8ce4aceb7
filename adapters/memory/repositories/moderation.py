"""The rule list and the strikes in memory."""

from __future__ import annotations

import uuid
from datetime import datetime

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry
from genstudio.core.model.moderation import Strike
from genstudio.core.model.moderation_rules import ModerationRule


class InMemoryModeration(_Repo):
    async def rules_version(self) -> tuple[int, datetime | None]:
        rules = self._d.moderation_rules.values()
        return len(rules), max((r.updated_at for r in rules), default=None)

    async def rules(self) -> list[ModerationRule]:
        return sorted(self._d.moderation_rules.values(), key=lambda r: (r.updated_at, r.id))

    async def add_rule(self, rule: ModerationRule) -> None:
        if rule.id in self._d.moderation_rules:
            raise DuplicateEntry(f"moderation rule {rule.id} exists")
        self._d.moderation_rules[rule.id] = rule

    async def delete_rule(self, rule_id: uuid.UUID) -> bool:
        return self._d.moderation_rules.pop(rule_id, None) is not None

    async def add_strike(self, strike: Strike) -> bool:
        if strike.reference is not None and any(
            s.user_id == strike.user_id and s.reference == strike.reference
            for s in self._d.strikes.values()
        ):
            return False
        self._d.strikes[strike.id] = strike
        return True

    async def strikes(self, user_id: uuid.UUID, since: datetime) -> list[Strike]:
        mine = [
            s for s in self._d.strikes.values() if s.user_id == user_id and s.created_at >= since
        ]
        return sorted(mine, key=lambda s: (s.created_at, s.id))
