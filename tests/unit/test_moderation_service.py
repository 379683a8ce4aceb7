"""Moderation's use cases on the memory adapters: layers in order with an early stop,
rules reloaded without a restart, strikes that suspend."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from genstudio.adapters.memory.clock import FakeClock
from genstudio.adapters.memory.uow import InMemoryUnitOfWorkFactory
from genstudio.core.model.moderation import (
    Classification,
    ContentRefused,
    GenerationSuspended,
    Label,
    Reason,
    StrikePolicy,
    Surface,
)
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.moderation import ModerationUnavailable

USER = uuid.UUID(int=7)


class Fixed:
    """A classifier that answers the same labels and counts its calls."""

    def __init__(self, name: str, *labels: Label, down: bool = False) -> None:
        self.name = name
        self.labels = labels
        self.down = down
        self.calls = 0

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return await self._answer()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        return await self._answer()

    async def _answer(self) -> Classification:
        self.calls += 1
        if self.down:
            raise ModerationUnavailable(f"{self.name} is down")
        return Classification(self.labels)


async def add_rule(
    factory: InMemoryUnitOfWorkFactory,
    clock: FakeClock,
    pattern: str,
    label: Reason = Reason.SEXUAL,
    action: RuleAction = RuleAction.REFUSE,
) -> ModerationRule:
    rule = ModerationRule(
        id=uuid.uuid4(),
        pattern=pattern,
        kind=RuleKind.WORD,
        label=label,
        action=action,
        updated_at=clock.now(),
    )
    async with factory() as uow:
        await uow.moderation.add_rule(rule)
        await uow.commit()
    return rule


def service(*classifiers: object, **kw: object) -> tuple[Moderation, FakeClock]:
    clock = FakeClock()
    factory = kw.pop("factory", None) or InMemoryUnitOfWorkFactory()
    return Moderation(factory, clock, classifiers, **kw), clock  # type: ignore[arg-type]


async def test_a_decisive_refusal_stops_before_the_later_layers() -> None:
    first = Fixed("first", Label(Reason.HATE, 0.99))
    later = Fixed("later")
    moderation, _ = service(first, later)
    decision = await moderation.judge_text("...", Surface.COMMENT)
    assert decision.reason is Reason.HATE
    assert (first.calls, later.calls) == (1, 0)


async def test_labels_below_the_thresholds_ask_every_layer_and_allow() -> None:
    first, later = Fixed("first", Label(Reason.HATE, 0.1)), Fixed("later")
    moderation, _ = service(first, later)
    assert not (await moderation.judge_image(b"png", "image/png", Surface.OUTPUT)).refused
    assert (first.calls, later.calls) == (1, 1)


async def test_an_unavailable_layer_is_skipped_unless_moderation_fails_closed() -> None:
    down, rules = Fixed("remote", down=True), Fixed("rules", Label(Reason.SPAM, 1.0))
    moderation, _ = service(down, rules)
    assert (await moderation.judge_text("x", Surface.COMMENT)).reason is Reason.SPAM
    strict, _ = service(Fixed("remote", down=True), fail_closed=True)
    with pytest.raises(ModerationUnavailable):
        await strict.judge_text("x", Surface.COMMENT)


async def test_a_refused_prompt_raises_content_refused_and_records_a_strike() -> None:
    factory = InMemoryUnitOfWorkFactory()
    moderation, clock = service(RuleListClassifier(factory, FakeClock()), factory=factory)
    await add_rule(factory, clock, "nude")
    with pytest.raises(ContentRefused) as refused:
        await moderation.check_prompt(USER, "a n\u200bude portrait")
    assert (refused.value.reason, refused.value.field, refused.value.code) == (
        Reason.SEXUAL,
        "prompt",
        "content_refused",
    )
    assert (await moderation.standing(USER)).points == 1


async def test_a_comment_gets_its_rewrite_and_no_strike() -> None:
    factory = InMemoryUnitOfWorkFactory()
    moderation, clock = service(RuleListClassifier(factory, FakeClock()), factory=factory)
    await add_rule(factory, clock, "idiot", Reason.HARASSMENT, RuleAction.REWRITE)
    kept = await moderation.check_text("you idiot", Surface.COMMENT, user_id=USER, field="body")
    assert kept == "you *****"
    assert (await moderation.standing(USER)).points == 0


async def test_strikes_reaching_the_threshold_suspend_generation_until_it_ends() -> None:
    factory = InMemoryUnitOfWorkFactory()
    moderation, clock = service(
        Fixed("model", Label(Reason.VIOLENCE_GRAPHIC, 0.95)),
        factory=factory,
        strikes=StrikePolicy(suspend_at=2, suspension=timedelta(hours=1)),
    )
    for _ in range(2):
        with pytest.raises(ContentRefused):
            await moderation.check_prompt(USER, "gore")
    with pytest.raises(GenerationSuspended):
        await moderation.check_prompt(USER, "a cat")
    clock.advance(3601)
    moderation.classifiers = ()
    await moderation.check_prompt(USER, "a cat")  # the suspension is over


async def test_rules_edited_in_the_database_apply_after_the_refresh_interval() -> None:
    factory = InMemoryUnitOfWorkFactory()
    clock = FakeClock()
    rules = RuleListClassifier(factory, clock, refresh_seconds=10)
    assert (await rules.classify_text("buy followers", Surface.COMMENT)).labels == ()
    await add_rule(factory, clock, "buy followers", Reason.SPAM)
    clock.advance(5)
    assert (await rules.classify_text("buy followers", Surface.COMMENT)).labels == ()  # cached
    clock.advance(5)
    verdict = await rules.classify_text("buy followers", Surface.COMMENT)
    assert [lb.reason for lb in verdict.labels] == [Reason.SPAM]


async def test_rules_deleted_in_the_database_stop_applying() -> None:
    factory = InMemoryUnitOfWorkFactory()
    clock = FakeClock()
    rules = RuleListClassifier(factory, clock, refresh_seconds=1)
    rule = await add_rule(factory, clock, "nude")
    assert (await rules.classify_text("nude", Surface.PROMPT)).labels
    async with factory() as uow:
        assert await uow.moderation.delete_rule(rule.id)
        await uow.commit()
    clock.advance(1)
    assert (await rules.classify_text("nude", Surface.PROMPT)).labels == ()
