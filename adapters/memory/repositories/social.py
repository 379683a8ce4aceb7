"""The social side in memory: the reference the Postgres adapter's contract is checked
against. Counters change under the post's lock, like the SQL row lock."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable
from datetime import datetime
from typing import TypeVar

import msgspec

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.credits import EntryKind
from genstudio.core.model.errors import AlreadyTaken, NotFound
from genstudio.core.model.jobs import JobStatus
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.social import (
    TOP_WINDOW,
    Author,
    Comment,
    CommentView,
    FeedSort,
    Key,
    Post,
    PostState,
    PostView,
    ProfileCounts,
    SocialProfile,
    Stats,
    Visibility,
    hot_score,
)

T = TypeVar("T")


def _page(rows: Iterable[T], key: Callable[[T], Key], after: Key | None, limit: int) -> list[T]:
    """Rows in descending ``key`` order after ``after``."""
    ordered = sorted(rows, key=key, reverse=True)  # type: ignore[arg-type,unused-ignore]
    if after is not None:
        ordered = [r for r in ordered if key(r) < after]  # type: ignore[operator,unused-ignore]
    return ordered[:limit]


class InMemorySocial(_Repo):
    # --- profiles ------------------------------------------------------------------

    async def get_profile(self, user_id: uuid.UUID) -> SocialProfile | None:
        if user_id not in self._d.profiles:
            return None
        return self._d.social_profiles.get(user_id) or SocialProfile(user_id=user_id)

    async def find_username(self, username: str) -> SocialProfile | None:
        for profile in self._d.social_profiles.values():
            if profile.username is not None and profile.username.lower() == username.lower():
                return profile
        return None

    async def save_profile(self, profile: SocialProfile) -> None:
        if profile.user_id not in self._d.profiles:
            raise NotFound(f"no profile {profile.user_id}")
        if profile.username is not None:
            # the unique index's lock: a second claimant waits, then sees the first
            await self._uow.acquire(("username", profile.username.lower()))
            holder = await self.find_username(profile.username)
            if holder is not None and holder.user_id != profile.user_id:
                raise AlreadyTaken(f"{profile.username!r} is taken", field="username")
        self._d.social_profiles[profile.user_id] = profile

    async def analytics_opt_outs(self, user_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        d = self._d  # an erased account (issue #17) is never tracked again either
        out = {u for u in user_ids if u in d.social_profiles and not d.social_profiles[u].analytics}
        return out | {u for u in user_ids if u in d.erasures}

    # --- posts ---------------------------------------------------------------------

    async def add_post(self, post: Post) -> None:
        await self._uow.acquire(("post-asset", post.asset_id))
        if any(p.asset_id == post.asset_id for p in self._d.posts.values()):
            raise AlreadyTaken("this asset is published already", field="assetId")
        self._d.posts[post.id] = post

    async def get_post(self, post_id: uuid.UUID) -> Post | None:
        return self._d.posts.get(post_id)

    async def by_share_id(self, share_id: str) -> Post | None:
        return next((p for p in self._d.posts.values() if p.share_id == share_id), None)

    async def _locked(self, post_id: uuid.UUID) -> Post | None:
        await self._uow.acquire(("post", post_id))
        return self._d.posts.get(post_id)

    async def update_post(self, post: Post) -> None:
        current = await self._locked(post.id)
        if current is None:
            raise NotFound(f"no post {post.id}")
        self._d.posts[post.id] = msgspec.structs.replace(
            current,
            caption=post.caption,
            visibility=post.visibility,
            state=post.state,
            updated_at=post.updated_at,
        )

    async def delete_post(self, post_id: uuid.UUID) -> None:
        await self._locked(post_id)
        self._d.posts.pop(post_id, None)
        for key in [k for k in self._d.likes if k[0] == post_id]:
            del self._d.likes[key]
        for cid in [c.id for c in self._d.comments.values() if c.post_id == post_id]:
            del self._d.comments[cid]

    async def count_share(self, post_id: uuid.UUID) -> None:
        post = await self._locked(post_id)
        if post is not None:
            self._d.posts[post_id] = msgspec.structs.replace(post, share_count=post.share_count + 1)

    def _count(self, post: Post, *, likes: int = 0, comments: int = 0) -> None:
        like_count = post.like_count + likes
        self._d.posts[post.id] = msgspec.structs.replace(
            post,
            like_count=like_count,
            comment_count=post.comment_count + comments,
            score=hot_score(like_count, post.created_at),
        )

    # --- likes and comments --------------------------------------------------------

    async def like(self, post_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> bool:
        post = await self._locked(post_id)
        if post is None:
            raise NotFound(f"no post {post_id}")
        if (post_id, user_id) in self._d.likes:
            return False
        self._d.likes[(post_id, user_id)] = at
        self._count(post, likes=1)
        return True

    async def unlike(self, post_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        post = await self._locked(post_id)
        if post is None or self._d.likes.pop((post_id, user_id), None) is None:
            return False
        self._count(post, likes=-1)
        return True

    async def add_comment(self, comment: Comment) -> None:
        post = await self._locked(comment.post_id)
        if post is None:
            raise NotFound(f"no post {comment.post_id}")
        self._d.comments[comment.id] = comment
        self._count(post, comments=1)

    async def get_comment(self, comment_id: uuid.UUID) -> Comment | None:
        return self._d.comments.get(comment_id)

    async def delete_comment(self, comment_id: uuid.UUID) -> bool:
        comment = self._d.comments.get(comment_id)
        if comment is None:
            return False
        post = await self._locked(comment.post_id)
        if self._d.comments.pop(comment_id, None) is None:
            return False
        if post is not None:
            self._count(post, comments=-1)
        return True

    # --- blocks --------------------------------------------------------------------

    async def block(self, blocker: uuid.UUID, blocked: uuid.UUID, at: datetime) -> None:
        self._d.blocks.setdefault((blocker, blocked), at)

    async def unblock(self, blocker: uuid.UUID, blocked: uuid.UUID) -> None:
        self._d.blocks.pop((blocker, blocked), None)

    async def blocked_between(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        return (a, b) in self._d.blocks or (b, a) in self._d.blocks

    def _apart(self, viewer: uuid.UUID | None, other: uuid.UUID) -> bool:
        if viewer is None or viewer == other:
            return False
        return (viewer, other) in self._d.blocks or (other, viewer) in self._d.blocks

    # --- reads ---------------------------------------------------------------------

    def _author(self, user_id: uuid.UUID) -> Author:
        p = self._d.social_profiles.get(user_id) or SocialProfile(user_id=user_id)
        return Author(
            user_id=user_id,
            username=p.username,
            display_name=p.display_name,
            avatar_key=p.avatar_key,
        )

    def _view(self, post: Post, viewer: uuid.UUID | None) -> PostView:
        liked = viewer is not None and (post.id, viewer) in self._d.likes
        return PostView(post=post, author=self._author(post.user_id), liked_by_me=liked)

    def _listed(self, post: Post, viewer: uuid.UUID | None) -> bool:
        """In a list of others' posts: public, visible, public account, not blocked."""
        if post.visibility is not Visibility.PUBLIC or post.state is not PostState.VISIBLE:
            return False
        author = self._d.social_profiles.get(post.user_id)
        if author is not None and author.is_private and viewer != post.user_id:
            return False
        return not self._apart(viewer, post.user_id)

    async def post_view(self, post_id: uuid.UUID, viewer: uuid.UUID | None) -> PostView | None:
        post = self._d.posts.get(post_id)
        return None if post is None else self._view(post, viewer)

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
        rows = [
            p
            for p in self._d.posts.values()
            if self._listed(p, viewer) and (kind is None or p.media_kind is kind)
        ]
        if sort is FeedSort.TOP:
            since = now - TOP_WINDOW
            rows = [p for p in rows if p.created_at > since]
            page = _page(rows, lambda p: (p.score, p.id), after, limit)
        else:
            page = _page(rows, lambda p: (p.created_at, p.id), after, limit)
        return [self._view(p, viewer) for p in page]

    async def user_posts(
        self, author: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[PostView]:
        rows = [
            p
            for p in self._d.posts.values()
            if p.user_id == author and (viewer == author or self._listed(p, viewer))
        ]
        page = _page(rows, lambda p: (p.created_at, p.id), after, limit)
        return [self._view(p, viewer) for p in page]

    async def liked_posts(
        self, viewer: uuid.UUID, *, after: Key | None, limit: int
    ) -> list[PostView]:
        rows = [
            (at, self._d.posts[post_id])
            for (post_id, user_id), at in self._d.likes.items()
            if user_id == viewer and post_id in self._d.posts
        ]
        rows = [(at, p) for at, p in rows if p.user_id == viewer or self._listed(p, viewer)]
        page = _page(rows, lambda r: (r[0], r[1].id), after, limit)
        return [msgspec.structs.replace(self._view(p, viewer), liked_at=at) for at, p in page]

    async def comments(
        self, post_id: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[CommentView]:
        rows = sorted(
            (
                c
                for c in self._d.comments.values()
                if c.post_id == post_id
                and c.state is PostState.VISIBLE
                and not self._apart(viewer, c.user_id)
            ),
            key=lambda c: (c.created_at, c.id),
        )
        if after is not None:
            rows = [c for c in rows if (c.created_at, c.id) > after]
        return [CommentView(comment=c, author=self._author(c.user_id)) for c in rows[:limit]]

    async def my_media(
        self, user_id: uuid.UUID, *, kind: MediaKind | None, after: Key | None, limit: int
    ) -> list[MediaAsset]:
        rows = [
            m
            for m in self._d.media.values()
            if m.user_id == user_id and (kind is None or m.kind is kind)
        ]
        return _page(rows, lambda m: (m.created_at, m.id), after, limit)

    async def counts(self, user_id: uuid.UUID) -> ProfileCounts:
        mine = [p for p in self._d.posts.values() if p.user_id == user_id]
        listed = [
            p for p in mine if p.visibility is Visibility.PUBLIC and p.state is PostState.VISIBLE
        ]
        return ProfileCounts(posts=len(listed), likes_received=sum(p.like_count for p in mine))

    async def stats(self, user_id: uuid.UUID) -> Stats:
        generations = {k.value: 0 for k in (ModelKind.IMAGE, ModelKind.EDIT, ModelKind.VIDEO)}
        trained = 0
        for job in self._d.jobs.values():
            if job.user_id != user_id or job.status is not JobStatus.SUCCEEDED:
                continue
            if job.kind is ModelKind.TRAINING:
                trained += 1
            else:
                generations[job.kind.value] += 1
        entries = self._d.entries.get(user_id, [])
        spent = -sum(e.amount for e in entries if e.kind in (EntryKind.HOLD, EntryKind.RELEASE))
        bought = sum(e.amount for e in entries if e.kind is EntryKind.PURCHASE)
        counts = await self.counts(user_id)
        return Stats(
            generations=generations,
            credits_spent=spent,
            credits_bought=bought,
            likes_received=counts.likes_received,
            posts=sum(1 for p in self._d.posts.values() if p.user_id == user_id),
            models_trained=trained,
        )
