"""What the social reads return: rows with the URLs their media are fetched from.

A public post's media (and every avatar) has a stable URL on this API
(``/m/{postId}/{n}``, ``/avatars/{userId}/{file}``) that a CDN may cache for long:
building it is string formatting, so a feed page signs nothing. Anything else (an
unlisted post, one of a private account, my own unpublished media) gets a signed,
expiring URL from the storage port.
"""

from __future__ import annotations

import uuid
from typing import Generic, TypeVar

import msgspec

from genstudio.core.model.media import MediaAsset
from genstudio.core.model.social import (
    Author,
    CommentView,
    Key,
    Post,
    PostState,
    PostView,
    SocialProfile,
    Visibility,
)
from genstudio.ports.storage import MediaStorage

T = TypeVar("T")


class Media(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    poster_url: str | None


class PostItem(msgspec.Struct, frozen=True, kw_only=True):
    view: PostView
    media: Media
    avatar_url: str | None


class CommentItem(msgspec.Struct, frozen=True, kw_only=True):
    view: CommentView
    avatar_url: str | None


class AssetItem(msgspec.Struct, frozen=True, kw_only=True):
    asset: MediaAsset
    url: str
    poster_url: str | None
    post_id: uuid.UUID | None = None


class Page(msgspec.Struct, Generic[T], frozen=True, kw_only=True):
    items: list[T]
    next_key: Key | None  # None: the last page


class Urls:
    """Builds media URLs: stable ones under ``base`` for what is public, signed ones
    (``ttl`` seconds) through ``storage`` for the rest."""

    def __init__(self, storage: MediaStorage, base: str, *, ttl: int = 3600) -> None:
        self.storage = storage
        self.base = base.rstrip("/")
        self.ttl = ttl

    def avatar(self, author: Author) -> str | None:
        return self._avatar(author.user_id, author.avatar_key)

    def avatar_of(self, profile: SocialProfile) -> str | None:
        return self._avatar(profile.user_id, profile.avatar_key)

    def _avatar(self, user_id: uuid.UUID, key: str | None) -> str | None:
        if key is None:
            return None
        return f"{self.base}/avatars/{user_id}/{key.rsplit('/', 1)[-1]}"

    async def post(self, post: Post, *, public: bool) -> Media:
        """``public``: the post is public, visible and its author's account public."""
        if public and post.visibility is Visibility.PUBLIC and post.state is PostState.VISIBLE:
            poster = f"{self.base}/m/{post.id}/1" if post.poster_key else None
            return Media(url=f"{self.base}/m/{post.id}/0", poster_url=poster)
        url = await self.storage.signed_url(post.storage_key, self.ttl)
        poster_url = None
        if post.poster_key:
            poster_url = await self.storage.signed_url(post.poster_key, self.ttl)
        return Media(url=url, poster_url=poster_url)

    async def asset(self, asset: MediaAsset) -> AssetItem:
        url = await self.storage.signed_url(asset.storage_key, self.ttl)
        poster = None
        if asset.thumbnail_key:
            poster = await self.storage.signed_url(asset.thumbnail_key, self.ttl)
        return AssetItem(asset=asset, url=url, poster_url=poster)

    async def item(self, view: PostView, *, public: bool) -> PostItem:
        media = await self.post(view.post, public=public)
        return PostItem(view=view, media=media, avatar_url=self.avatar(view.author))
