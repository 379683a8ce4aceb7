"""The rule list's screen (one alternation over every word rule, issue #19's benchmark)
decides nothing: with it or without it, every text gets the same labels and the same
masked rewrite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from genstudio.core.model.moderation import Reason
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind, RuleSet

T0 = datetime(2026, 12, 8, tzinfo=UTC)
#: a small alphabet, so that rules overlap, nest and share prefixes
LETTERS = "abeos"
word = st.text(LETTERS, min_size=1, max_size=4)


def rule(pattern: str, kind: RuleKind, action: RuleAction) -> ModerationRule:
    return ModerationRule(
        id=uuid.uuid4(),
        pattern=pattern,
        kind=kind,
        label=Reason.HATE,
        action=action,
        updated_at=T0,
    )


rules = st.lists(
    st.builds(
        rule,
        st.one_of(word, st.lists(word, min_size=2, max_size=3).map(" ".join)),
        st.sampled_from([RuleKind.WORD, RuleKind.WORD, RuleKind.WORD, RuleKind.REGEX]),
        st.sampled_from(list(RuleAction)),
    ),
    max_size=12,
)
# words, their leetspeak and capitals, glued by spaces, punctuation or nothing
texts = st.lists(
    st.one_of(word, word.map(lambda w: w.replace("e", "3").replace("o", "0")), word.map(str.upper)),
    max_size=10,
).flatmap(
    lambda parts: st.lists(
        st.sampled_from([" ", "", "-", ", ", "\u200b"]), min_size=len(parts), max_size=len(parts)
    ).map(lambda seps: "".join(p + s for p, s in zip(parts, seps, strict=True)))
)


@settings(max_examples=300, deadline=None)
@given(rules, texts)
def test_the_screen_changes_no_verdict(made: list[ModerationRule], text: str) -> None:
    screened, plain = RuleSet(made), RuleSet(made, screen=False)
    assert screened.classify(text) == plain.classify(text)


def test_a_text_no_word_rule_matches_skips_them_and_regexes_still_run() -> None:
    made = [
        rule("sob", RuleKind.WORD, RuleAction.REFUSE),
        rule(r"b+o+", RuleKind.REGEX, RuleAction.REFUSE),
    ]
    rules_ = RuleSet(made)
    assert rules_.screen is not None and rules_.screen.search("a sobbing boo") is None
    [label] = rules_.classify("a sobbing boo").labels  # "sob" inside a word: no match
    assert label.reason is Reason.HATE
    assert len(rules_.classify("sob, boo").labels) == 2
