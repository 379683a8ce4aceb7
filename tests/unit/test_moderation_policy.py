"""The moderation policy, the rule list's normalisation and strikes: pure rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from genstudio.core.model.moderation import (
    Action,
    Classification,
    Label,
    ModerationPolicy,
    Reason,
    Strike,
    StrikePolicy,
    Surface,
    parse_thresholds,
    policy_from,
)
from genstudio.core.model.moderation_rules import (
    ModerationRule,
    RuleAction,
    RuleKind,
    RuleSet,
    check_rule,
    normalise,
)

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def rule(pattern: str, label: Reason = Reason.SEXUAL, **kw: object) -> ModerationRule:
    return ModerationRule(
        id=uuid.uuid4(),
        pattern=pattern,
        kind=kw.get("kind", RuleKind.WORD),  # type: ignore[arg-type]
        label=label,
        action=kw.get("action", RuleAction.REFUSE),  # type: ignore[arg-type]
        updated_at=NOW,
    )


# --- the policy ---


def test_a_score_at_the_surfaces_threshold_refuses_with_its_reason() -> None:
    policy = ModerationPolicy()
    verdict = Classification((Label(Reason.SEXUAL, 0.8),))
    decision = policy.decide(Surface.PROMPT, [verdict])
    assert decision.action is Action.REFUSE and decision.reason is Reason.SEXUAL


def test_the_same_score_is_allowed_in_a_prompt_but_refused_on_an_avatar() -> None:
    policy = ModerationPolicy()
    verdict = Classification((Label(Reason.SEXUAL, 0.55),))
    assert policy.decide(Surface.PROMPT, [verdict]).action is Action.ALLOW
    assert policy.decide(Surface.AVATAR, [verdict]).reason is Reason.SEXUAL


def test_a_refusal_names_the_most_severe_reason_not_the_highest_score() -> None:
    labels = (Label(Reason.SPAM, 1.0), Label(Reason.SEXUAL_MINORS, 0.3), Label(Reason.HATE, 0.9))
    decision = ModerationPolicy().decide(Surface.COMMENT, [Classification(labels)])
    assert decision.reason is Reason.SEXUAL_MINORS


def test_a_rewrite_is_taken_on_a_comment_and_refuses_a_username() -> None:
    policy = ModerationPolicy()
    verdict = Classification((Label(Reason.HARASSMENT, 0.0),), rewritten="you ***")
    comment = policy.decide(Surface.COMMENT, [verdict])
    assert comment.action is Action.REWRITE and comment.text == "you ***"
    username = policy.decide(Surface.USERNAME, [verdict])
    assert username.action is Action.REFUSE and username.reason is Reason.HARASSMENT


def test_nothing_seen_is_allowed() -> None:
    assert ModerationPolicy().decide(Surface.OUTPUT, [Classification()]).action is Action.ALLOW


def test_thresholds_are_configurable_per_surface_and_everywhere() -> None:
    policy = policy_from("violence_graphic=0.5, output.sexual=0.3")
    assert policy.threshold(Surface.PROMPT, Reason.VIOLENCE_GRAPHIC) == 0.5
    assert policy.threshold(Surface.OUTPUT, Reason.SEXUAL) == 0.3
    assert policy.threshold(Surface.AVATAR, Reason.SEXUAL) == 0.5  # default override kept
    assert policy.threshold(Surface.PROMPT, Reason.SEXUAL) == 0.8


@pytest.mark.parametrize("bad", ["sexual", "nudity=0.5", "prompt.sexual=2", "feed.sexual=0.5"])
def test_a_malformed_threshold_names_its_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="moderation threshold"):
        parse_thresholds(bad)


def test_a_label_score_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Label(Reason.HATE, 1.5)


# --- normalisation and the rule list ---


def test_normalisation_undoes_invisible_characters_width_case_accents_and_lookalikes() -> None:
    # zero-width joiner, fullwidth letters, a Cyrillic capital ie, an accent
    assert normalise("N\u200dU\uff24\u0415 sé").text == "nude se"


def test_normalised_characters_remember_their_origin() -> None:
    norm = normalise("a\u200bb")
    assert norm.text == "ab" and norm.origin == (0, 2)


@pytest.mark.parametrize(
    "evasion",
    ["nude", "NUDE", "n\u200bude", "nu\u0501e", "nud3", "\uff4e\uff55\uff44\uff45", "n\u00fcde"],
)
def test_a_word_rule_sees_through_evasions(evasion: str) -> None:
    verdict = RuleSet([rule("nude")]).classify(f"a {evasion} portrait")
    assert verdict.labels == (Label(Reason.SEXUAL, 1.0, "rules"),)


def test_a_word_rule_does_not_match_inside_another_word() -> None:
    assert RuleSet([rule("ass")]).classify("a class of glass").labels == ()


def test_a_phrase_rule_matches_across_any_spacing() -> None:
    assert RuleSet([rule("kill yourself", Reason.SELF_HARM)]).classify("KILL -- yourself").labels
    assert RuleSet([rule("kill yourself", Reason.SELF_HARM)]).classify("kill  yourself").labels


def test_a_regex_rule_matches_the_normalised_text() -> None:
    rules = RuleSet([rule(r"buy\s+followers", Reason.SPAM, kind=RuleKind.REGEX)])
    assert rules.classify("BUY  FOLLOWERS now").labels[0].reason is Reason.SPAM


def test_a_rewrite_rule_masks_the_users_own_characters() -> None:
    rules = RuleSet([rule("idiot", Reason.HARASSMENT, action=RuleAction.REWRITE)])
    verdict = rules.classify("what an 1d\u200biot, really")
    assert verdict.rewritten == "what an ******, really"
    assert verdict.labels == (Label(Reason.HARASSMENT, 0.0, "rules"),)


def test_a_regex_that_does_not_compile_is_left_out() -> None:
    bad = rule("(unclosed", kind=RuleKind.REGEX)
    rules = RuleSet([bad, rule("nude")])
    assert len(rules) == 1 and rules.rejected == [bad]
    with pytest.raises(ValueError, match="does not compile"):
        check_rule("(unclosed", RuleKind.REGEX)


# --- strikes ---


def strike(days_ago: float, reason: Reason = Reason.SEXUAL) -> Strike:
    return Strike(
        id=uuid.uuid4(),
        user_id=uuid.UUID(int=1),
        reason=reason,
        surface=Surface.PROMPT,
        created_at=NOW - timedelta(days=days_ago),
    )


def test_strikes_below_the_threshold_do_not_suspend() -> None:
    standing = StrikePolicy(suspend_at=3).standing([strike(1), strike(2)], NOW)
    assert standing.points == 2 and not standing.suspended(NOW)


def test_reaching_the_threshold_suspends_from_that_strike_for_the_suspension() -> None:
    policy = StrikePolicy(suspend_at=3, suspension=timedelta(days=7))
    standing = policy.standing([strike(3), strike(2), strike(1)], NOW)
    assert standing.suspended_until == NOW - timedelta(days=1) + timedelta(days=7)
    assert standing.suspended(NOW)
    assert not standing.suspended(NOW + timedelta(days=6))


def test_strikes_older_than_the_window_do_not_count() -> None:
    policy = StrikePolicy(suspend_at=2, window=timedelta(days=30))
    assert policy.standing([strike(40), strike(1)], NOW).points == 1


def test_one_strike_for_sexual_content_of_minors_suspends() -> None:
    assert StrikePolicy().standing([strike(0, Reason.SEXUAL_MINORS)], NOW).suspended(NOW)
