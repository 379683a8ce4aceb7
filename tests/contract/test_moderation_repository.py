"""The moderation repository's contract (rules and strikes), over memory and Postgres."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import DuplicateEntry
from genstudio.core.model.moderation import Reason, Strike, Surface
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


def a_rule(pattern: str, at: datetime = T0) -> ModerationRule:
    return ModerationRule(
        id=uuid.uuid4(),
        pattern=pattern,
        kind=RuleKind.REGEX,
        label=Reason.SPAM,
        action=RuleAction.REWRITE,
        updated_at=at,
    )


async def test_rules_round_trip_and_their_version_moves_with_every_change(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        count, _ = await uow.moderation.rules_version()
        first, second = a_rule(r"buy\s+now", T0 + timedelta(days=400)), a_rule("x", T0)
        await uow.moderation.add_rule(first)
        await uow.moderation.add_rule(second)
        assert await uow.moderation.rules_version() == (count + 2, first.updated_at)
        rules = await uow.moderation.rules()
        assert [r for r in rules if r.id in {first.id, second.id}] == [second, first]
        with pytest.raises(DuplicateEntry):
            await uow.moderation.add_rule(first)


async def test_a_deleted_rule_is_gone_and_lowers_the_count(uow_factory: UnitOfWorkFactory) -> None:
    rule = a_rule("gone")
    async with uow_factory() as uow:
        await uow.moderation.add_rule(rule)
        await uow.commit()
    async with uow_factory() as uow:
        count, _ = await uow.moderation.rules_version()
        assert await uow.moderation.delete_rule(rule.id)
        assert not await uow.moderation.delete_rule(rule.id)
        assert (await uow.moderation.rules_version())[0] == count - 1
        await uow.commit()


async def test_strikes_are_read_per_user_since_a_time_oldest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()  # no profile needed: a first prompt may be refused

    def strike(who: uuid.UUID, hours: int) -> Strike:
        return Strike(
            id=uuid.uuid4(),
            user_id=who,
            reason=Reason.HATE,
            surface=Surface.OUTPUT,
            created_at=T0 + timedelta(hours=hours),
            reference=f"job:{hours}",
        )

    old, newer, newest = strike(user, 0), strike(user, 2), strike(user, 3)
    async with uow_factory() as uow:
        for s in (newest, old, newer, strike(other, 2)):
            await uow.moderation.add_strike(s)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.moderation.strikes(user, T0 + timedelta(hours=1)) == [newer, newest]


def a_strike(user: uuid.UUID, reference: str | None, hours: int = 0) -> Strike:
    return Strike(
        id=uuid.uuid4(),
        user_id=user,
        reason=Reason.HATE,
        surface=Surface.PROMPT,
        created_at=T0 + timedelta(hours=hours),
        reference=reference,
    )


async def test_a_user_has_one_strike_per_reference_and_any_number_without_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, other = uuid.uuid4(), uuid.uuid4()
    first = a_strike(user, "request:abc:key-1")
    async with uow_factory() as uow:
        assert await uow.moderation.add_strike(first)
        # the same refusal met again (a retried request): not recorded
        assert not await uow.moderation.add_strike(a_strike(user, "request:abc:key-1", 1))
        # another user's refusal with the same reference is theirs
        assert await uow.moderation.add_strike(a_strike(other, "request:abc:key-1"))
        # refusals without a reference are each their own
        assert await uow.moderation.add_strike(a_strike(user, None, 2))
        assert await uow.moderation.add_strike(a_strike(user, None, 3))
        await uow.commit()
    async with uow_factory() as uow:
        mine = await uow.moderation.strikes(user, T0)
    assert [s.reference for s in mine] == ["request:abc:key-1", None, None]
    assert mine[0] == first


async def test_a_display_name_strike_round_trips(uow_factory: UnitOfWorkFactory) -> None:
    strike = msgspec.structs.replace(
        a_strike(uuid.uuid4(), "profile/display_name#0a1b"), surface=Surface.DISPLAY_NAME
    )
    async with uow_factory() as uow:
        assert await uow.moderation.add_strike(strike)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.moderation.strikes(strike.user_id, T0) == [strike]
