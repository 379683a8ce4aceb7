"""The social side (issue #17): profiles, posts, likes, comments, shares, blocks.

Pure rules and types. What is checked here is checked the same way by both
adapters: a username's shape, a caption's and a comment's length and characters,
who may see a post, the ``top`` feed's score.

A post is one published asset (image or video) under one id, whatever its media
kind. Nothing is public by default: an asset is private until its owner publishes
it, ``public`` (feed, profile, share link) or ``unlisted`` (share link only). A
post's ``state`` is the moderators': ``hidden`` (pending review: enough reports)
and ``removed`` (an operator took it down) posts are seen by nobody but their
author. Blocks work both ways: neither side sees the other's posts or comments,
and the blocked side cannot like or comment on the blocker's posts.
"""

from __future__ import annotations

import enum
import math
import re
import unicodedata
import uuid
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.ids import random_bytes
from genstudio.core.model.media import MediaKind

FEED_PAGE = 20
USERNAME_RE = re.compile(r"[a-z0-9_.]{3,30}")
#: a username may change once per this long (the first choice is free)
USERNAME_COOLDOWN = timedelta(days=30)
MAX_DISPLAY_NAME = 50
MAX_BIO = 300
MAX_CAPTION = 2200  # Instagram's limit, which the app's users know
MAX_COMMENT = 1000
LANGUAGES = frozenset({"en", "de", "es", "fr", "it", "pt", "ja", "ko", "zh"})


class ContentFilter(enum.StrEnum):
    """What a user asked not to see (applied once the moderation labels land)."""

    MATURE = "mature"
    VIOLENCE = "violence"
    SPOILERS = "spoilers"


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    UNLISTED = "unlisted"


class PostState(enum.StrEnum):
    VISIBLE = "visible"
    HIDDEN = "hidden"  # pending review (reported by enough distinct users)
    REMOVED = "removed"  # taken down by an operator


class FeedSort(enum.StrEnum):
    NEW = "new"
    TOP = "top"


class SocialProfile(msgspec.Struct, frozen=True, kw_only=True):
    """The public side of an account (the ``profiles`` row's social columns)."""

    user_id: uuid.UUID
    username: str | None = None
    display_name: str | None = None
    bio: str | None = None
    avatar_key: str | None = None
    is_private: bool = False
    language: str | None = None
    content_filters: tuple[ContentFilter, ...] = ()
    username_changed_at: datetime | None = None
    #: product analytics about this user (issue #20); false: nothing is sent
    analytics: bool = True


class Post(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    asset_id: uuid.UUID
    media_kind: MediaKind
    # the media facts the feed renders, copied from the (immutable) asset so that a
    # feed page reads one table
    storage_key: str
    poster_key: str | None
    content_type: str
    width: int
    height: int
    duration_seconds: float | None
    caption: str
    visibility: Visibility
    share_id: str
    created_at: datetime
    updated_at: datetime
    state: PostState = PostState.VISIBLE
    like_count: int = 0
    comment_count: int = 0
    share_count: int = 0
    score: float = 0.0


class Comment(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    post_id: uuid.UUID
    user_id: uuid.UUID
    body: str
    created_at: datetime
    state: PostState = PostState.VISIBLE  # reports and operators hide or remove it


class Author(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    username: str | None
    display_name: str | None
    avatar_key: str | None


class PostView(msgspec.Struct, frozen=True, kw_only=True):
    """A post as one viewer sees it. ``key`` is the row's position in its page's order
    (the like's time for ``liked``), for the next cursor."""

    post: Post
    author: Author
    liked_by_me: bool
    liked_at: datetime | None = None


class CommentView(msgspec.Struct, frozen=True, kw_only=True):
    comment: Comment
    author: Author


class Stats(msgspec.Struct, frozen=True, kw_only=True):
    generations: dict[str, int]  # succeeded jobs by kind (image, edit, video)
    credits_spent: int  # held for jobs, less what failed or cancelled jobs gave back
    credits_bought: int  # store purchases
    likes_received: int
    posts: int
    models_trained: int


class ProfileCounts(msgspec.Struct, frozen=True, kw_only=True):
    posts: int
    likes_received: int


#: a keyset position: (created_at or score or liked_at, id); the sort decides which
Key = tuple[datetime | float, uuid.UUID]


# --- rules ---------------------------------------------------------------------------


def check_username(value: str) -> str:
    """The stored form: lower case, 3-30 of ``[a-z0-9_.]``. Upper case is folded (the
    name is unique case-insensitively); anything else is refused, letters that fold to
    ASCII included (the Kelvin sign is not a ``k``)."""
    stripped = value.strip()
    name = stripped.lower()
    if not stripped.isascii() or not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            "a username has 3 to 30 characters: letters a-z, digits, '_' and '.'",
            field="username",
        )
    return name


def may_rename(profile: SocialProfile, now: datetime) -> datetime | None:
    """None when ``profile`` may change its username now, else when it may."""
    if profile.username is None or profile.username_changed_at is None:
        return None
    allowed = profile.username_changed_at + USERNAME_COOLDOWN
    return None if now >= allowed else allowed


def _printable(text: str, field: str, *, newlines: bool) -> None:
    for ch in text:
        if ch in "\n\t" and newlines:
            continue
        # control characters other than line breaks, lone surrogates (no JSON text
        # holds one), and the bidirectional overrides that make text read differently
        # than it is stored. Code points this Python's Unicode database does not know
        # are taken: an emoji newer than the database is one (and the OpenAPI document
        # can say exactly this rule, which a list of unassigned ranges it could not)
        if unicodedata.category(ch) in {"Cc", "Cs"} or ch in BIDI_OVERRIDES:
            raise InvalidInput(f"{field} has a control character", field=field)


BIDI_OVERRIDES = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_text(value: str | None, field: str, limit: int, *, newlines: bool = True) -> str:
    """Trimmed text of at most ``limit`` characters, no control characters. Both are
    checked on the text as sent (a control character at an end is refused too, not
    trimmed away: what the OpenAPI document says), the length again once normalised."""
    raw = value or ""
    text = unicodedata.normalize("NFC", raw.strip())
    if len(raw) > limit or len(text) > limit:
        raise InvalidInput(f"{field} has more than {limit} characters", field=field)
    _printable(raw, field, newlines=newlines)
    return text


def check_comment(value: str) -> str:
    body = check_text(value, "body", MAX_COMMENT)
    if not body:
        raise InvalidInput("a comment needs some text", field="body")
    return body


def check_language(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in LANGUAGES:
        raise InvalidInput(f"language must be one of {sorted(LANGUAGES)}", field="language")
    return value


#: seconds of recency that one factor of ten in likes is worth (Reddit's "hot")
TOP_GRAVITY_S = 45_000.0
#: the ``top`` feed shows posts of this window only
TOP_WINDOW = timedelta(days=7)
_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: keeps the scores small


def hot_score(likes: int, created_at: datetime) -> float:
    """log10(likes + 1) + age / 12.5 h: each tenfold in likes lifts a post as much as
    being 12.5 hours newer. It moves only when the likes do (never with the clock), so
    it is a stored column with an index, and ``top`` pages by it with a keyset; the
    time decay is that newer posts start higher. Migration 0200's ``genstudio_hot``
    is the same formula (a test checks they agree)."""
    return math.log10(max(likes, 0) + 1) + (created_at.timestamp() - _EPOCH) / TOP_GRAVITY_S


_SHARE_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"


def new_share_id() -> str:
    """12 characters of an unambiguous 56-letter alphabet (~70 bits): unguessable, so
    an unlisted post is reachable only by its link."""
    raw = random_bytes(16)
    # modulo bias over 256/56 is < 2%, irrelevant at this length
    return "".join(_SHARE_ALPHABET[b % len(_SHARE_ALPHABET)] for b in raw[:12])


def may_see(post: Post, author: SocialProfile | None, viewer: uuid.UUID | None) -> bool:
    """Whether ``viewer`` may see ``post`` in a list (feed, profile); blocks are the
    repository's to check. The author always sees their own posts."""
    if viewer == post.user_id:
        return True
    if post.state is not PostState.VISIBLE or post.visibility is not Visibility.PUBLIC:
        return False
    return not (author is not None and author.is_private)


def reachable_by_link(post: Post) -> bool:
    """A share link opens a visible post, public or unlisted, whoever asks."""
    return post.state is PostState.VISIBLE
