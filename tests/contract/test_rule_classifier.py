"""The Classifier contract (genstudio.testing.contracts.moderation, the suite an
outside classifier runs too) over the operator's rule list, on the memory store."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from genstudio.adapters.memory import FakeClock, InMemoryUnitOfWorkFactory
from genstudio.core.model.moderation import Reason
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.ports.moderation import Classifier
from genstudio.testing.contracts.moderation import TextClassifierContract


class TestRuleListClassifier(TextClassifierContract):
    @pytest.fixture
    async def classifier_factory(self) -> Callable[[], Classifier]:
        factory, clock = InMemoryUnitOfWorkFactory(), FakeClock()
        async with factory() as uow:
            await uow.moderation.add_rule(
                ModerationRule(
                    id=uuid.uuid4(),
                    pattern="hateword",
                    kind=RuleKind.WORD,
                    label=Reason.HATE,
                    action=RuleAction.REFUSE,
                    updated_at=clock.now(),
                )
            )
            await uow.commit()
        return lambda: RuleListClassifier(factory, clock)

    @pytest.fixture
    def flagged_text(self) -> tuple[str, Reason]:
        return "you are a h4teword", Reason.HATE
