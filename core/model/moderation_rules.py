"""The operator's rule list, matched on normalised text.

Evasions are undone before matching: invisible (format) characters removed, Unicode
NFKC, case folded, combining marks dropped (``séx``), look-alike letters from other
scripts folded to Latin (Cyrillic ``\u043e``), and a second reading with leetspeak undone
(``s3x``, ``@ss``). Every character of the normalised text remembers where it came
from, so a rewrite rule masks the user's own characters, not the normalised ones.

Pure: ``re`` and ``unicodedata`` from the standard library. The rows come from the
database through ``ports.repositories.moderation`` (``core.services.moderation.rules``
caches and reloads them).
"""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import datetime

import msgspec

from genstudio.core.model.moderation import Classification, Label, Reason


class RuleKind(enum.StrEnum):
    WORD = "word"  # a word or phrase, matched whole (not inside another word)
    REGEX = "regex"  # a Python regular expression over the normalised text


class RuleAction(enum.StrEnum):
    REFUSE = "refuse"  # a match is a label of score 1
    REWRITE = "rewrite"  # a match is masked (``***``); a label of score 0 names it


class ModerationRule(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    pattern: str
    kind: RuleKind
    label: Reason
    action: RuleAction
    updated_at: datetime


#: letters of other scripts that look like Latin ones (Unicode's confusables.txt,
#: the common lower-case subset: Cyrillic and Greek)
#: (written as escapes: the letters themselves are what linters flag as ambiguous)
CONFUSABLES = str.maketrans(
    "\u0430\u0432\u0435\u0451\u043a\u043c\u043d\u043e\u0440\u0441\u0442\u0443"
    "\u0445\u0456\u0457\u0458\u0455\u0501\u0261\u04cf\u03b1\u03b2\u03b5\u03b7"
    "\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7\u03c9\u0131",
    "abeekmhopctyxiijsdglabenikvoptuxwi",
)

#: leetspeak digits and symbols read as letters (one character for one: positions kept)
LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "@": "a", "$": "s",
     "!": "i", "|": "l", "+": "t"}
)  # fmt: skip


class Normalised(msgspec.Struct, frozen=True):
    text: str
    #: ``origin[i]``: the index in the original text of ``text[i]``
    origin: tuple[int, ...]

    @property
    def leet(self) -> str:
        """The same text with leetspeak undone (same length, same origins)."""
        return self.text.translate(LEET)


def normalise(text: str) -> Normalised:
    """The text as rules see it, each character mapped back to its origin."""
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        if unicodedata.category(char) == "Cf":  # zero-width and other invisible marks
            continue
        for folded in unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", char)):
            if unicodedata.combining(folded):
                continue
            for c in folded.casefold().translate(CONFUSABLES):
                out.append(c)
                origin.append(index)
    return Normalised("".join(out), tuple(origin))


class RuleSet:
    """The compiled rules: ``classify`` a text against them. A regex that does not
    compile is left out (``rejected`` lists them, for the operator's log).

    The word rules (usually most of the list) are also compiled into one alternation,
    the *screen*: one search of it says whether any word rule can match, so a text
    that matches none (the common case) costs one pass instead of one per rule
    (bench/moderation.py: 1,000 rules, ~45x less per prompt). It only ever skips the
    word rules when it found nothing; what matched is still decided rule by rule.
    ``screen=False`` leaves it out (the tests compare both)."""

    def __init__(self, rules: Iterable[ModerationRule], *, screen: bool = True) -> None:
        self.compiled: list[tuple[ModerationRule, re.Pattern[str]]] = []
        self.rejected: list[ModerationRule] = []
        for rule in rules:
            try:
                self.compiled.append((rule, _compile(rule)))
            except re.error:
                self.rejected.append(rule)
        self.screen = _screen(self.compiled) if screen else None

    def __len__(self) -> int:
        return len(self.compiled)

    def classify(self, text: str, source: str = "rules") -> Classification:
        """A label per matching rule (refuse: score 1; rewrite: score 0) and, when a
        rewrite rule matched, the text with its matches masked."""
        norm = normalise(text)
        readings = (norm.text, norm.leet) if norm.leet != norm.text else (norm.text,)
        words = self.screen is None or any(self.screen.search(r) for r in readings)
        labels: list[Label] = []
        masked: set[int] = set()
        for rule, pattern in self.compiled:
            if not words and rule.kind is RuleKind.WORD:
                continue  # the screen found no word rule's match in any reading
            spans = [m.span() for r in readings for m in pattern.finditer(r) if m.end() > m.start()]
            if not spans:
                continue
            refuse = rule.action is RuleAction.REFUSE
            labels.append(Label(rule.label, 1.0 if refuse else 0.0, source))
            if not refuse:
                for start, end in spans:
                    masked.update(range(norm.origin[start], norm.origin[end - 1] + 1))
        rewritten = None
        if masked:
            rewritten = "".join("*" if i in masked else c for i, c in enumerate(text))
        return Classification(tuple(labels), rewritten)


def _compile(rule: ModerationRule) -> re.Pattern[str]:
    if rule.kind is RuleKind.REGEX:
        return re.compile(rule.pattern, re.IGNORECASE)
    # whole words only ("ass" does not match "class"), any spacing between them
    return re.compile(_WHOLE.format(_words(rule)))


#: a word rule's pattern: its words, not inside other words
_WHOLE = r"(?<!\w)(?:{})(?!\w)"


def _words(rule: ModerationRule) -> str:
    words = normalise(rule.pattern).text.split()
    return r"\W+".join(map(re.escape, words))


def _screen(compiled: list[tuple[ModerationRule, re.Pattern[str]]]) -> re.Pattern[str] | None:
    """One pattern that matches where any word rule matches (and maybe where none
    does: an empty rule); None without word rules. At a position the alternation
    backtracks into its next branch when what follows fails, so no word rule's match
    is ever missed."""
    bodies = [_words(rule) for rule, _ in compiled if rule.kind is RuleKind.WORD]
    if not bodies:
        return None
    try:
        return re.compile(_WHOLE.format("|".join(bodies)))
    except (re.error, RecursionError, OverflowError):  # too big for re: rule by rule
        return None


def check_rule(pattern: str, kind: RuleKind) -> None:
    """Raises ValueError when a rule's pattern is empty or its regex does not compile
    (for whoever writes rules: the admin route, the CLI)."""
    if not pattern.strip():
        raise ValueError("a moderation rule needs a pattern")
    if kind is RuleKind.REGEX:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"the rule's regex does not compile: {exc}") from exc
