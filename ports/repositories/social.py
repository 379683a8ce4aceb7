"""The social side's persistence (issue #17): profiles' public columns, posts, likes,
comments, shares and blocks, and the reads the feed and profiles page through.

Every list is keyset-paginated (``after``: the last row's key of the previous page,
never an offset) and returns at most ``limit`` rows. Every read that lists other
users' posts or comments leaves out, for ``viewer``: posts not ``visible`` or not
``public`` (an author sees their own), posts of private accounts (but their own),
and everything of a user whom the viewer blocked or who blocked the viewer.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.social import (
    Comment,
    CommentView,
    FeedSort,
    Key,
    Post,
    PostView,
    ProfileCounts,
    SocialProfile,
    Stats,
)


class SocialRepository(Protocol):
    # --- profiles ------------------------------------------------------------------

    async def get_profile(self, user_id: uuid.UUID) -> SocialProfile | None:
        """None when the user has no profile row (never signed in)."""
        ...

    async def find_username(self, username: str) -> SocialProfile | None:
        """The profile holding ``username`` (already lower case), or None."""
        ...

    async def save_profile(self, profile: SocialProfile) -> None:
        """Write the profile's social columns (its row must exist: ``profiles.ensure``).
        Raises core.errors.AlreadyTaken (``field="username"``) when another user holds
        the username, compared case-insensitively, also when both claim it at once:
        one wins and the other gets the error (at the latest from ``commit``)."""
        ...

    async def analytics_opt_outs(self, user_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        """Those of ``user_ids`` who turned analytics off (``SocialProfile.analytics``
        false) or whose account was erased, in one read. Users without a profile row
        are not opted out."""
        ...

    # --- posts ---------------------------------------------------------------------

    async def add_post(self, post: Post) -> None:
        """Raises core.errors.AlreadyTaken (``field="assetId"``) when the asset is
        published already (one post per asset)."""
        ...

    async def get_post(self, post_id: uuid.UUID) -> Post | None: ...

    async def by_share_id(self, share_id: str) -> Post | None: ...

    async def update_post(self, post: Post) -> None:
        """Write caption, visibility, state and updated_at (never the counters)."""
        ...

    async def delete_post(self, post_id: uuid.UUID) -> None:
        """The post with its likes and comments. A missing post is not an error."""
        ...

    async def count_share(self, post_id: uuid.UUID) -> None:
        """One more share, counted in one statement (exact under concurrency)."""
        ...

    # --- likes and comments: each changes its post's counter in the same statement --

    async def like(self, post_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> bool:
        """True when the like is new; liking twice is a no-op. ``like_count`` and
        ``score`` follow, exactly, however many like and unlike at once."""
        ...

    async def unlike(self, post_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """True when a like was removed."""
        ...

    async def add_comment(self, comment: Comment) -> None:
        """Adds the comment and one to its post's ``comment_count``."""
        ...

    async def get_comment(self, comment_id: uuid.UUID) -> Comment | None: ...

    async def delete_comment(self, comment_id: uuid.UUID) -> bool:
        """Removes it and one from its post's ``comment_count``; False if it was gone."""
        ...

    # --- blocks (the routes that write them are trust and safety's) -------------------

    async def block(self, blocker: uuid.UUID, blocked: uuid.UUID, at: datetime) -> None:
        """Idempotent."""
        ...

    async def unblock(self, blocker: uuid.UUID, blocked: uuid.UUID) -> None: ...

    async def blocked_between(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        """Whether either blocked the other."""
        ...

    # --- reads ---------------------------------------------------------------------

    async def post_view(self, post_id: uuid.UUID, viewer: uuid.UUID | None) -> PostView | None:
        """The post with its author and ``liked_by_me``, whatever its visibility: the
        caller decides (``core.model.social.may_see``, blocks)."""
        ...

    async def feed(
        self,
        viewer: uuid.UUID,
        *,
        sort: FeedSort,
        kind: MediaKind | None,
        after: Key | None,
        limit: int,
        now: datetime,
    ) -> list[PostView]:
        """Public, visible posts of public accounts, minus both directions of blocks.
        ``new``: newest first by (created_at, id); ``top``: by (score, id) descending,
        posts of the last ``TOP_WINDOW`` before ``now`` only."""
        ...

    async def user_posts(
        self, author: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[PostView]:
        """The author's posts newest first: every one of theirs for the author, the
        public visible ones for anyone else (the caller checks privacy and blocks)."""
        ...

    async def liked_posts(
        self, viewer: uuid.UUID, *, after: Key | None, limit: int
    ) -> list[PostView]:
        """Posts the viewer liked and may still see, latest like first (key: liked_at)."""
        ...

    async def comments(
        self, post_id: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[CommentView]:
        """Oldest first, minus both directions of the viewer's blocks."""
        ...

    async def my_media(
        self, user_id: uuid.UUID, *, kind: MediaKind | None, after: Key | None, limit: int
    ) -> list[MediaAsset]:
        """The user's generated media, newest first by (created_at, id)."""
        ...

    async def counts(self, user_id: uuid.UUID) -> ProfileCounts:
        """Public posts and likes received (one aggregate over the author's posts)."""
        ...

    async def stats(self, user_id: uuid.UUID) -> Stats:
        """A handful of aggregate queries (jobs, ledger, posts), never rows counted in
        Python."""
        ...
