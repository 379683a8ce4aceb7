"""Moderation: one policy deciding allow / rewrite / refuse for every text and image
that enters or leaves, from the verdicts of classifiers; and strikes.

Pure rules. Classifiers (behind ``ports.moderation.Classifier``) only say what they
see: labels (a reason and a score in [0, 1]) and, for a text rule that masks words, a
rewritten text. What that means is decided here, per surface: a score at or above the
surface's threshold for that reason refuses; a rewrite is taken where the surface
allows one (a comment's masked word) and refuses where it does not (a username). The
reason code travels to the app (``content_refused``'s ``reason``) so it can say why.

Refusals a user caused count as strikes; enough of them within a window suspend the
user's generation for a while (``StrikePolicy``).
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.errors import Forbidden, InvalidInput


class Surface(enum.StrEnum):
    """Where a text or an image enters or leaves."""

    PROMPT = "prompt"
    CAPTION = "caption"
    COMMENT = "comment"
    USERNAME = "username"
    DISPLAY_NAME = "display_name"
    BIO = "bio"
    OUTPUT = "output"  # a generated image or video frame, before it is stored
    EDIT_INPUT = "edit_input"
    TRAINING_PHOTO = "training_photo"
    AVATAR = "avatar"

    @property
    def is_text(self) -> bool:
        return self in TEXT_SURFACES


TEXT_SURFACES = frozenset(
    {
        Surface.PROMPT,
        Surface.CAPTION,
        Surface.COMMENT,
        Surface.USERNAME,
        Surface.DISPLAY_NAME,
        Surface.BIO,
    }
)
MEDIA_SURFACES = frozenset(set(Surface) - TEXT_SURFACES)


class Reason(enum.StrEnum):
    """Why content was refused: the machine-readable code the app shows a text for.
    Listed from the most to the least severe (a refusal names the most severe)."""

    SEXUAL_MINORS = "sexual_minors"
    SEXUAL = "sexual"
    VIOLENCE_GRAPHIC = "violence_graphic"
    HATE = "hate"
    SELF_HARM = "self_harm"
    HARASSMENT = "harassment"
    ILLEGAL = "illegal"
    SPAM = "spam"


SEVERITY: dict[Reason, int] = {reason: n for n, reason in enumerate(Reason)}


class Action(enum.StrEnum):
    ALLOW = "allow"
    REWRITE = "rewrite"
    REFUSE = "refuse"


class Label(msgspec.Struct, frozen=True):
    """One thing a classifier saw: ``score`` in [0, 1] (1: certain)."""

    reason: Reason
    score: float
    #: which classifier said so (``rules``, ``openai``, ``nudenet``): for the logs
    source: str = ""

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"a label's score is in [0, 1], not {self.score}")


class Classification(msgspec.Struct, frozen=True):
    """A classifier's verdict on one text or image."""

    labels: tuple[Label, ...] = ()
    #: a text the classifier proposes instead (words masked by a rewrite rule)
    rewritten: str | None = None


class Decision(msgspec.Struct, frozen=True):
    action: Action
    reason: Reason | None = None
    #: the text to use instead (REWRITE only)
    text: str | None = None
    labels: tuple[Label, ...] = ()

    @property
    def refused(self) -> bool:
        return self.action is Action.REFUSE


ALLOWED = Decision(Action.ALLOW)

#: scores at or above which a reason refuses, on every surface unless overridden.
#: Sexual content of minors is refused on the faintest signal; nudity is not refused
#: in a prompt's wording alone as readily as in an image.
DEFAULT_REFUSE_AT: dict[Reason, float] = {
    Reason.SEXUAL_MINORS: 0.2,
    Reason.SEXUAL: 0.8,
    Reason.VIOLENCE_GRAPHIC: 0.8,
    Reason.HATE: 0.7,
    Reason.SELF_HARM: 0.7,
    Reason.HARASSMENT: 0.8,
    Reason.ILLEGAL: 0.8,
    Reason.SPAM: 0.9,
}

#: per-surface overrides of the defaults: an avatar or a training photo shows a real
#: person, so nudity is refused on a weaker signal there
DEFAULT_SURFACE_REFUSE_AT: dict[Surface, dict[Reason, float]] = {
    Surface.AVATAR: {Reason.SEXUAL: 0.5},
    Surface.TRAINING_PHOTO: {Reason.SEXUAL: 0.5},
    Surface.OUTPUT: {Reason.SEXUAL: 0.6},
    Surface.EDIT_INPUT: {Reason.SEXUAL: 0.6},
}

#: surfaces where a rewrite (masked words) is acceptable; elsewhere a rewrite refuses
DEFAULT_REWRITABLE = frozenset({Surface.CAPTION, Surface.COMMENT, Surface.BIO})


class ModerationPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Thresholds per surface and reason, and which surfaces accept rewrites."""

    refuse_at: Mapping[Reason, float] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_REFUSE_AT)
    )
    surface_refuse_at: Mapping[Surface, Mapping[Reason, float]] = msgspec.field(
        default_factory=lambda: {s: dict(t) for s, t in DEFAULT_SURFACE_REFUSE_AT.items()}
    )
    rewritable: frozenset[Surface] = DEFAULT_REWRITABLE

    def threshold(self, surface: Surface, reason: Reason) -> float:
        """The score at or above which ``reason`` refuses on ``surface``."""
        override = self.surface_refuse_at.get(surface, {})
        return override.get(reason, self.refuse_at.get(reason, 1.0))

    def refusing(self, surface: Surface, labels: Iterable[Label]) -> list[Label]:
        """The labels that refuse on ``surface``, most severe first, then by score."""
        over = [lb for lb in labels if lb.score >= self.threshold(surface, lb.reason)]
        return sorted(over, key=lambda lb: (SEVERITY[lb.reason], -lb.score))

    def decisive(self, surface: Surface, classification: Classification) -> bool:
        """Whether this verdict alone refuses (the layers after it need not run)."""
        return bool(self.refusing(surface, classification.labels))

    def decide(self, surface: Surface, verdicts: Sequence[Classification]) -> Decision:
        """Allow, rewrite or refuse, from every verdict gathered for one item.

        Refused when any label reaches its threshold (the most severe names the
        reason). Otherwise, a proposed rewrite (the last layer's that proposed one)
        is taken on a rewritable surface and refuses elsewhere, naming the reason of
        the rewriting layer's strongest label (``spam`` when it gave none).
        """
        labels = tuple(lb for v in verdicts for lb in v.labels)
        refusing = self.refusing(surface, labels)
        if refusing:
            return Decision(Action.REFUSE, refusing[0].reason, labels=labels)
        rewrites = [v for v in verdicts if v.rewritten is not None]
        if not rewrites:
            return Decision(Action.ALLOW, labels=labels)
        last = rewrites[-1]
        if surface in self.rewritable and surface.is_text:
            return Decision(Action.REWRITE, text=last.rewritten, labels=labels)
        strongest = max(last.labels, key=lambda lb: lb.score, default=None)
        reason = strongest.reason if strongest is not None else Reason.SPAM
        return Decision(Action.REFUSE, reason, labels=labels)


def parse_thresholds(
    text: str,
) -> tuple[dict[Reason, float], dict[Surface, dict[Reason, float]]]:
    """Threshold overrides from configuration: ``reason=score`` for every surface,
    ``surface.reason=score`` for one, comma-separated (``sexual=0.7,avatar.sexual=0.4``).

    Raises ValueError naming the entry at fault.
    """
    everywhere: dict[Reason, float] = {}
    per_surface: dict[Surface, dict[Reason, float]] = {}
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        name, sep, value = entry.partition("=")
        try:
            score = float(value)
            surface_name, dot, reason_name = name.strip().rpartition(".")
            reason = Reason(reason_name)
            surface = Surface(surface_name) if dot else None
        except ValueError:
            raise ValueError(
                f"moderation threshold {entry!r} is not [surface.]reason=score"
            ) from None
        if not sep or not 0.0 <= score <= 1.0:
            raise ValueError(f"moderation threshold {entry!r} needs a score in [0, 1]")
        if surface is None:
            everywhere[reason] = score
        else:
            per_surface.setdefault(surface, {})[reason] = score
    return everywhere, per_surface


def policy_from(text: str) -> ModerationPolicy:
    """The default policy with ``parse_thresholds``' overrides applied."""
    everywhere, per_surface = parse_thresholds(text)
    surfaces = {s: dict(t) for s, t in DEFAULT_SURFACE_REFUSE_AT.items()}
    for surface, reasons in per_surface.items():
        surfaces.setdefault(surface, {}).update(reasons)
    return ModerationPolicy(
        refuse_at={**DEFAULT_REFUSE_AT, **everywhere}, surface_refuse_at=surfaces
    )


# --- strikes ---


class Strike(msgspec.Struct, frozen=True, kw_only=True):
    """A refusal the user caused (a prompt, an output of their job, an upload)."""

    id: uuid.UUID
    user_id: uuid.UUID
    reason: Reason
    surface: Surface
    created_at: datetime
    #: what was refused, for the admin (a job id, a post id); never the content itself.
    #: A user has at most one strike per reference: the same refusal met again (a
    #: retried request, a redelivered job) counts once (``request_reference``,
    #: ``content_reference``)
    reference: str | None = None


def request_reference(key: str | None, request_hash: str) -> str | None:
    """A strike's reference for a refusal of a request sent with an Idempotency-Key:
    the same for every retry of that request (same key, same body), so that a retry
    refused again records no second strike; another body under the key is another
    request. None without a key: every request is a refusal of its own."""
    if key is None:
        return None
    return f"request:{request_hash[:16]}:{key}"


def content_reference(target: str, content: bytes | str) -> str:
    """A strike's reference for content refused on ``target`` (``post:<id>``,
    ``avatar``, ``photo_set:<id>``): the target and a digest of the content (never the
    content itself), so that sending the same refused content again to the same place
    records no second strike, while different content does."""
    data = content.encode() if isinstance(content, str) else content
    return f"{target}#{hashlib.sha256(data).hexdigest()[:16]}"


class Standing(msgspec.Struct, frozen=True):
    points: int = 0
    suspended_until: datetime | None = None

    def suspended(self, now: datetime) -> bool:
        return self.suspended_until is not None and now < self.suspended_until


DEFAULT_STRIKE_WEIGHTS: dict[Reason, int] = {Reason.SEXUAL_MINORS: 5}


class StrikePolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Strikes within ``window`` add up (each its reason's weight, 1 unless listed);
    reaching ``suspend_at`` points suspends generation for ``suspension`` from the
    strike that reached it. A strike for sexual content of minors alone suspends."""

    window: timedelta = timedelta(days=30)
    suspend_at: int = 5
    suspension: timedelta = timedelta(days=7)
    weights: Mapping[Reason, int] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_STRIKE_WEIGHTS)
    )

    def standing(self, strikes: Iterable[Strike], now: datetime) -> Standing:
        """The user's points within the window, and the end of the latest suspension
        their strikes earned (None if none)."""
        recent = sorted(
            (s for s in strikes if now - self.window <= s.created_at <= now),
            key=lambda s: s.created_at,
        )
        points = 0
        until: datetime | None = None
        for strike in recent:
            points += self.weights.get(strike.reason, 1)
            if points >= self.suspend_at:
                until = strike.created_at + self.suspension
        return Standing(points=points, suspended_until=until)


# --- errors the edge renders ---


class ContentRefused(InvalidInput):
    """The content was refused by moderation (422 ``content_refused``); ``reason``
    is the code the app shows a text for, ``field`` the part refused."""

    code = "content_refused"

    def __init__(self, reason: Reason, *, field: str | None = None) -> None:
        super().__init__(f"this content is not allowed ({reason.value})", field=field)
        self.reason = reason


class GenerationSuspended(Forbidden):
    """Refusals added up to a suspension (403 ``generation_suspended``)."""

    code = "generation_suspended"

    def __init__(self, until: datetime) -> None:
        super().__init__(
            f"generation is suspended until {until.isoformat()} after repeated refusals"
        )
        self.until = until
