"""The rule list and the strikes in Postgres (migration 0410)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import text

from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.rows import Row, _Repository, _utc, _utc_or_none
from genstudio.core.model.moderation import Reason, Strike, Surface
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind

_VERSION = Compiled(text("SELECT count(*) AS n, max(updated_at) AS latest FROM moderation_rules"))
_RULES = Compiled(
    text(
        "SELECT id, pattern, kind, label, action, updated_at FROM moderation_rules"
        " ORDER BY updated_at, id"
    )
)
_ADD_RULE = Compiled(
    text(
        "INSERT INTO moderation_rules (id, pattern, kind, label, action, updated_at)"
        " VALUES (:id, :pattern, :kind, :label, :action, :updated_at)"
    )
)
_DELETE_RULE = Compiled(text("DELETE FROM moderation_rules WHERE id = :id RETURNING id"))
_ADD_STRIKE = Compiled(
    text(
        "INSERT INTO moderation_strikes (id, user_id, reason, surface, reference, created_at)"
        " VALUES (:id, :user_id, :reason, :surface, :reference, :created_at)"
        # the same refusal met again (migration 0420's unique index): nothing written
        " ON CONFLICT (user_id, reference) WHERE reference IS NOT NULL DO NOTHING"
        " RETURNING id"
    )
)
_STRIKES = Compiled(
    text(
        "SELECT id, user_id, reason, surface, reference, created_at FROM moderation_strikes"
        " WHERE user_id = :user_id AND created_at >= :since ORDER BY created_at, id"
    )
)


def _rule(row: Row) -> ModerationRule:
    return ModerationRule(
        id=row["id"],
        pattern=row["pattern"],
        kind=RuleKind(row["kind"]),
        label=Reason(row["label"]),
        action=RuleAction(row["action"]),
        updated_at=_utc(row["updated_at"]),
    )


def _strike(row: Row) -> Strike:
    return Strike(
        id=row["id"],
        user_id=row["user_id"],
        reason=Reason(row["reason"]),
        surface=Surface(row["surface"]),
        reference=row["reference"],
        created_at=_utc(row["created_at"]),
    )


class SqlModeration(_Repository):
    async def rules_version(self) -> tuple[int, datetime | None]:
        row = await self._sql.one(_VERSION, {})
        assert row is not None
        return int(row["n"]), _utc_or_none(row["latest"])

    async def rules(self) -> list[ModerationRule]:
        return [_rule(r) for r in await self._sql.all(_RULES, {})]

    async def add_rule(self, rule: ModerationRule) -> None:
        await self._sql.run(
            _ADD_RULE,
            {
                "id": rule.id,
                "pattern": rule.pattern,
                "kind": rule.kind.value,
                "label": rule.label.value,
                "action": rule.action.value,
                "updated_at": rule.updated_at,
            },
        )

    async def delete_rule(self, rule_id: uuid.UUID) -> bool:
        return await self._sql.one(_DELETE_RULE, {"id": rule_id}) is not None

    async def add_strike(self, strike: Strike) -> bool:
        row = await self._sql.one(
            _ADD_STRIKE,
            {
                "id": strike.id,
                "user_id": strike.user_id,
                "reason": strike.reason.value,
                "surface": strike.surface.value,
                "reference": strike.reference,
                "created_at": strike.created_at,
            },
        )
        return row is not None

    async def strikes(self, user_id: uuid.UUID, since: datetime) -> list[Strike]:
        rows = await self._sql.all(_STRIKES, {"user_id": user_id, "since": since})
        return [_strike(r) for r in rows]
