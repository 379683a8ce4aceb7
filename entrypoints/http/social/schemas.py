"""Request and response bodies of the social routes (camelCase JSON)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import msgspec
from msgspec import UNSET, UnsetType

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.social import ContentFilter, Key, SocialProfile, Stats, Visibility
from genstudio.core.services.social.profiles import ProfilePatch, PublicProfile
from genstudio.core.services.social.views import AssetItem, CommentItem, Page, PostItem

# --- cursors: opaque to the app, a keyset position to us -------------------------------


def encode_cursor(key: Key | None) -> str | None:
    if key is None:
        return None
    value, row_id = key
    raw = msgspec.json.encode([value, str(row_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


_SCORE_CURSOR = msgspec.json.Decoder(tuple[float, uuid.UUID])
_TIME_CURSOR = msgspec.json.Decoder(tuple[datetime, uuid.UUID])


def decode_cursor(cursor: str | None, *, score: bool = False) -> Key | None:
    """``score``: the ``top`` feed's cursor holds a number, every other a time."""
    if not cursor:
        return None
    refused = InvalidInput("the cursor is not one this API returned", field="cursor")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if score:
            return _SCORE_CURSOR.decode(raw)
        at, row_id = _TIME_CURSOR.decode(raw)
    except (binascii.Error, msgspec.DecodeError, ValueError):
        raise refused from None
    if at.tzinfo is None:
        raise refused
    return at, row_id


# --- profiles ---------------------------------------------------------------------------


class Preferences(msgspec.Struct, rename="camel", kw_only=True):
    language: str | None = None
    content_filters: list[str] = msgspec.field(default_factory=list)
    analytics: bool = True  # false: no product analytics about me (issue #20)


class ProfilePreferencesPatch(
    msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True
):
    language: str | UnsetType | None = UNSET
    content_filters: list[ContentFilter] | UnsetType = UNSET
    analytics: bool | UnsetType = UNSET


class ProfileResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    username: str | None
    display_name: str | None
    bio: str | None
    avatar_url: str | None
    is_private: bool
    preferences: Preferences
    username_changed_at: datetime | None

    @classmethod
    def of(cls, p: SocialProfile, avatar_url: str | None) -> ProfileResponse:
        return cls(
            id=p.user_id,
            username=p.username,
            display_name=p.display_name,
            bio=p.bio,
            avatar_url=avatar_url,
            is_private=p.is_private,
            preferences=Preferences(
                language=p.language,
                content_filters=[f.value for f in p.content_filters],
                analytics=p.analytics,
            ),
            username_changed_at=p.username_changed_at,
        )


class ProfilePatchRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    """Absent fields stay as they are; ``null`` clears the ones that may be empty."""

    username: str | UnsetType = UNSET
    display_name: str | UnsetType | None = UNSET
    bio: str | UnsetType | None = UNSET
    is_private: bool | UnsetType = UNSET
    preferences: ProfilePreferencesPatch | UnsetType = UNSET

    def patch(self) -> ProfilePatch:
        clear: set[str] = set()

        def value(name: str, given: object) -> str | None:
            if given is UNSET:
                return None
            if given is None:
                clear.add(name)
                return None
            assert isinstance(given, str)
            return given

        prefs = self.preferences if self.preferences is not UNSET else ProfilePreferencesPatch()
        filters = prefs.content_filters
        return ProfilePatch(
            username=self.username if self.username is not UNSET else None,
            display_name=value("display_name", self.display_name),
            bio=value("bio", self.bio),
            is_private=self.is_private if self.is_private is not UNSET else None,
            language=value("language", prefs.language),
            content_filters=None if filters is UNSET else tuple(filters),
            analytics=None if prefs.analytics is UNSET else prefs.analytics,
            clear=frozenset(clear),
        )


class CountsResponse(msgspec.Struct, rename="camel", kw_only=True):
    posts: int
    likes_received: int


class UserResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    username: str | None
    display_name: str | None
    bio: str | None
    avatar_url: str | None
    is_private: bool
    counts: CountsResponse
    posts: list[PostResponse]
    posts_hidden: bool
    next_cursor: str | None

    @classmethod
    def of(cls, found: PublicProfile) -> UserResponse:
        p = found.profile
        return cls(
            id=p.user_id,
            username=p.username,
            display_name=p.display_name,
            bio=p.bio,
            avatar_url=found.avatar_url,
            is_private=p.is_private,
            counts=CountsResponse(
                posts=found.counts.posts, likes_received=found.counts.likes_received
            ),
            posts=[PostResponse.of(i) for i in found.posts.items],
            posts_hidden=found.posts_hidden,
            next_cursor=encode_cursor(found.posts.next_key),
        )


class StatsResponse(msgspec.Struct, rename="camel", kw_only=True):
    generations: dict[str, int]
    credits_spent: int
    credits_bought: int
    likes_received: int
    posts: int
    models_trained: int

    @classmethod
    def of(cls, s: Stats) -> StatsResponse:
        return cls(**msgspec.structs.asdict(s))


class AssetResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    kind: str
    url: str
    poster_url: str | None
    content_type: str
    width: int
    height: int
    duration_seconds: float | None
    prompt: str
    model_id: str
    job_id: uuid.UUID | None
    created_at: datetime

    @classmethod
    def of(cls, item: AssetItem) -> AssetResponse:
        a = item.asset
        return cls(
            id=a.id,
            kind=a.kind.value,
            url=item.url,
            poster_url=item.poster_url,
            content_type=a.content_type,
            width=a.width,
            height=a.height,
            duration_seconds=a.duration_seconds,
            prompt=a.prompt,
            model_id=a.model_id,
            job_id=a.job_id,
            created_at=a.created_at,
        )


class AssetPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[AssetResponse]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[AssetItem]) -> AssetPage:
        return cls(
            items=[AssetResponse.of(i) for i in page.items],
            next_cursor=encode_cursor(page.next_key),
        )


# --- posts ----------------------------------------------------------------------------


class AuthorResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    username: str | None
    display_name: str | None
    avatar_url: str | None


class MediaResponse(msgspec.Struct, rename="camel", kw_only=True):
    kind: str
    url: str
    poster_url: str | None
    content_type: str
    width: int
    height: int
    duration_seconds: float | None


class PostResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    author: AuthorResponse
    media: MediaResponse
    caption: str
    visibility: str
    like_count: int
    comment_count: int
    liked_by_me: bool
    created_at: datetime
    updated_at: datetime
    asset_id: uuid.UUID | None = None  # only to the author
    state: str | None = None  # only to the author: visible | hidden | removed

    @classmethod
    def of(cls, item: PostItem) -> PostResponse:
        v, p = item.view, item.view.post
        return cls(
            id=p.id,
            author=AuthorResponse(
                id=v.author.user_id,
                username=v.author.username,
                display_name=v.author.display_name,
                avatar_url=item.avatar_url,
            ),
            media=MediaResponse(
                kind=p.media_kind.value,
                url=item.media.url,
                poster_url=item.media.poster_url,
                content_type=p.content_type,
                width=p.width,
                height=p.height,
                duration_seconds=p.duration_seconds,
            ),
            caption=p.caption,
            visibility=p.visibility.value,
            like_count=p.like_count,
            comment_count=p.comment_count,
            liked_by_me=v.liked_by_me,
            created_at=p.created_at,
            updated_at=p.updated_at,
        )

    def for_author(self, item: PostItem) -> PostResponse:
        p = item.view.post
        return msgspec.structs.replace(self, asset_id=p.asset_id, state=p.state.value)


class PostPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[PostResponse]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[PostItem]) -> PostPage:
        return cls(
            items=[PostResponse.of(i) for i in page.items], next_cursor=encode_cursor(page.next_key)
        )


class PublishRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    asset_id: uuid.UUID
    visibility: Visibility  # no default: nothing is public unless asked
    caption: str = ""


class EditPostRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    caption: str | UnsetType = UNSET
    visibility: Visibility | UnsetType = UNSET


class CommentRequest(msgspec.Struct, rename="camel", kw_only=True, forbid_unknown_fields=True):
    body: str


class CommentResponse(msgspec.Struct, rename="camel", kw_only=True):
    id: uuid.UUID
    post_id: uuid.UUID
    author: AuthorResponse
    body: str
    created_at: datetime

    @classmethod
    def of(cls, item: CommentItem) -> CommentResponse:
        c, a = item.view.comment, item.view.author
        return cls(
            id=c.id,
            post_id=c.post_id,
            author=AuthorResponse(
                id=a.user_id,
                username=a.username,
                display_name=a.display_name,
                avatar_url=item.avatar_url,
            ),
            body=c.body,
            created_at=c.created_at,
        )


class CommentPage(msgspec.Struct, rename="camel", kw_only=True):
    items: list[CommentResponse]
    next_cursor: str | None

    @classmethod
    def of(cls, page: Page[CommentItem]) -> CommentPage:
        return cls(
            items=[CommentResponse.of(i) for i in page.items],
            next_cursor=encode_cursor(page.next_key),
        )


class ShareResponse(msgspec.Struct, rename="camel", kw_only=True):
    share_id: str
    url: str
