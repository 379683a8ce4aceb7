"""Publishing, the feed, likes, comments and shares.

Who may reach a post (to read it, like it, comment on it or share it): its author
always; anyone else only while it is ``visible``, its author's account is public and
neither blocked the other. Unlisted posts are listed nowhere (feed, profile); their
share link (or the id the app resolves it to) opens them. A post someone may not
reach is a 404, never a 403: ids leak nothing.

Captions and comments pass ``TextReview`` before anything is written: a length and
character check, then moderation (``core.services.moderation.surfaces.ModeratedTexts``,
issue #19: a refusal is a 422 ``content_refused`` naming the field, nothing written);
the seam is the ``review`` argument.

Likes and comments write their notification (the post's author's inbox and push
outbox, ``core.services.notifications``) in the same transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

import msgspec

from genstudio.core.model.analytics import comment_added, post_liked, post_published
from genstudio.core.model.errors import Forbidden, InvalidInput, NotFound
from genstudio.core.model.ids import new_id, uuid7
from genstudio.core.model.media import MediaKind
from genstudio.core.model.notifications import Event, EventKind
from genstudio.core.model.safety import AccountSuspended
from genstudio.core.model.social import (
    FEED_PAGE,
    MAX_CAPTION,
    Author,
    Comment,
    CommentView,
    FeedSort,
    Key,
    Post,
    PostState,
    SocialProfile,
    Visibility,
    check_comment,
    check_text,
    new_share_id,
)
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.notifications.emit import ROWS_ONLY, Notifier
from genstudio.core.services.social.views import CommentItem, Page, PostItem, Urls
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory


class TextReview(Protocol):
    """The moderation seam for captions and comments: the text to store (maybe with
    words masked), or InvalidInput naming ``field`` (ContentRefused for a refusal).
    ``user_id``: whose text (a refusal counts against them); ``target``: where it goes
    (``asset:<id>`` for a new post, ``post:<id>``), for the strike's reference."""

    async def caption(self, text: str, *, user_id: uuid.UUID, target: str) -> str: ...

    async def comment(self, text: str, *, user_id: uuid.UUID, target: str) -> str: ...


class LengthAndCharacters:
    """The review without moderation: length and character checks."""

    async def caption(self, text: str, *, user_id: uuid.UUID, target: str) -> str:
        return check_text(text, "caption", MAX_CAPTION)

    async def comment(self, text: str, *, user_id: uuid.UUID, target: str) -> str:
        return check_comment(text)


async def _reach(uow: UnitOfWork, post_id: uuid.UUID, viewer: uuid.UUID | None) -> Post:
    """The post if ``viewer`` may reach it (module docstring), else NotFound."""
    post = await uow.social.get_post(post_id)
    if post is None:
        raise NotFound(f"no post {post_id}")
    if viewer == post.user_id:
        return post
    if post.state is not PostState.VISIBLE:
        raise NotFound(f"no post {post_id}")
    author = await uow.social.get_profile(post.user_id)
    if author is not None and author.is_private:
        raise NotFound(f"no post {post_id}")
    if viewer is not None and await uow.social.blocked_between(viewer, post.user_id):
        raise NotFound(f"no post {post_id}")
    return post


def _is_public(post: Post, author: SocialProfile | None) -> bool:
    return (
        post.visibility is Visibility.PUBLIC
        and post.state is PostState.VISIBLE
        and not (author is not None and author.is_private)
    )


class Posts:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        urls: Urls,
        *,
        review: TextReview | None = None,
        notifier: Notifier = ROWS_ONLY,
        analytics: Tracker | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.urls = urls
        self.review: TextReview = review or LengthAndCharacters()
        self.notifier = notifier
        self.analytics = analytics  # publishing, likes, comments (issue #20)

    # --- publishing ------------------------------------------------------------------

    async def publish(
        self,
        user_id: uuid.UUID,
        email: str | None,
        *,
        asset_id: uuid.UUID,
        caption: str,
        visibility: Visibility,
        now: datetime,
    ) -> PostItem:
        """Raises NotFound (not my asset), AlreadyTaken (``assetId``: published
        already), InvalidInput (``caption``)."""
        await self._not_suspended(user_id)  # a free check before the (maybe paid) review
        text = await self.review.caption(caption, user_id=user_id, target=f"asset:{asset_id}")
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            if await uow.safety.suspended(user_id):  # suspended while the review ran
                raise AccountSuspended()
            asset = await uow.media.get(asset_id)
            if asset is None or asset.user_id != user_id:
                raise NotFound(f"no asset {asset_id}", field="assetId")
            post = Post(
                id=new_id(),
                user_id=user_id,
                asset_id=asset.id,
                media_kind=asset.kind,
                storage_key=asset.storage_key,
                poster_key=asset.thumbnail_key,
                content_type=asset.content_type,
                width=asset.width,
                height=asset.height,
                duration_seconds=asset.duration_seconds,
                caption=text,
                visibility=visibility,
                share_id=new_share_id(),
                created_at=now,
                updated_at=now,
            )
            await uow.social.add_post(post)
            track(uow, self.analytics, post_published(post))
            view = await uow.social.post_view(post.id, user_id)
            author = await uow.social.get_profile(user_id)
            await uow.commit()
        assert view is not None
        return await self.urls.item(view, public=_is_public(post, author))

    async def edit(
        self,
        user_id: uuid.UUID,
        post_id: uuid.UUID,
        *,
        caption: str | None,
        visibility: Visibility | None,
        now: datetime,
    ) -> PostItem:
        target = f"post:{post_id}"
        text = (
            None
            if caption is None
            else await self.review.caption(caption, user_id=user_id, target=target)
        )
        async with self.uow_factory() as uow:
            post = await uow.social.get_post(post_id)
            if post is None or post.user_id != user_id:
                raise NotFound(f"no post {post_id}")
            changed = msgspec.structs.replace(
                post,
                caption=post.caption if text is None else text,
                visibility=visibility or post.visibility,
                updated_at=now,
            )
            await uow.social.update_post(changed)
            view = await uow.social.post_view(post_id, user_id)
            author = await uow.social.get_profile(user_id)
            await uow.commit()
        assert view is not None
        return await self.urls.item(view, public=_is_public(view.post, author))

    async def unpublish(self, user_id: uuid.UUID, post_id: uuid.UUID) -> None:
        """The post goes with its likes and comments; the asset stays, private."""
        async with self.uow_factory() as uow:
            post = await uow.social.get_post(post_id)
            if post is None or post.user_id != user_id:
                raise NotFound(f"no post {post_id}")
            await uow.social.delete_post(post_id)
            await uow.commit()

    # --- reading ---------------------------------------------------------------------

    async def get(self, post_id: uuid.UUID, viewer: uuid.UUID) -> PostItem:
        async with self.uow_factory() as uow:
            await _reach(uow, post_id, viewer)
            view = await uow.social.post_view(post_id, viewer)
            author = None if view is None else await uow.social.get_profile(view.post.user_id)
        if view is None:
            raise NotFound(f"no post {post_id}")
        return await self.urls.item(view, public=_is_public(view.post, author))

    async def feed(
        self,
        viewer: uuid.UUID,
        *,
        sort: FeedSort,
        kind: MediaKind | None,
        after: Key | None,
        now: datetime,
        limit: int = FEED_PAGE,
    ) -> Page[PostItem]:
        async with self.uow_factory() as uow:
            views = await uow.social.feed(
                viewer, sort=sort, kind=kind, after=after, limit=limit + 1, now=now
            )
        # every feed post is public: its URLs are strings, nothing is signed
        items = [await self.urls.item(v, public=True) for v in views[:limit]]
        last = views[limit - 1].post if len(views) > limit else None
        if last is None:
            return Page(items=items, next_key=None)
        key: Key = (last.score, last.id) if sort is FeedSort.TOP else (last.created_at, last.id)
        return Page(items=items, next_key=key)

    async def shared(self, share_id: str) -> PostItem:
        """What a share link opens: a visible post of a public account, public or
        unlisted, for anyone (no token)."""
        async with self.uow_factory() as uow:
            post = await uow.social.by_share_id(share_id)
            if post is None or post.state is not PostState.VISIBLE:
                raise NotFound("no such link")
            author = await uow.social.get_profile(post.user_id)
            if author is not None and author.is_private:
                raise NotFound("no such link")
            view = await uow.social.post_view(post.id, None)
        assert view is not None
        return await self.urls.item(view, public=_is_public(post, author))

    async def public_file(self, post_id: uuid.UUID, n: int) -> tuple[str, str]:
        """(storage key, content type) of a public post's media (0) or poster (1);
        NotFound for anything not public."""
        async with self.uow_factory() as uow:
            post = await uow.social.get_post(post_id)
            author = None if post is None else await uow.social.get_profile(post.user_id)
        if post is None or not _is_public(post, author):
            raise NotFound("no such media")
        if n == 0:
            return post.storage_key, post.content_type
        if n == 1 and post.poster_key:
            return post.poster_key, "image/png"
        raise NotFound("no such media")

    async def avatar_file(self, user_id: uuid.UUID, name: str) -> str:
        """The storage key of the user's current avatar named ``name``, else NotFound."""
        async with self.uow_factory() as uow:
            profile = await uow.social.get_profile(user_id)
        key = None if profile is None else profile.avatar_key
        if key is None or key.rsplit("/", 1)[-1] != name:
            raise NotFound("no such avatar")
        return key

    async def _not_suspended(self, user_id: uuid.UUID) -> None:
        """Raises AccountSuspended for an account an operator suspended (``suspend_user``)."""
        async with self.uow_factory() as uow:
            if await uow.safety.suspended(user_id):
                raise AccountSuspended()

    # --- reactions -------------------------------------------------------------------

    async def like(
        self, user_id: uuid.UUID, email: str | None, post_id: uuid.UUID, now: datetime
    ) -> None:
        """Idempotent. A blocked pair, a hidden post: NotFound."""
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            if await uow.safety.suspended(user_id):
                raise AccountSuspended()
            post = await _reach(uow, post_id, user_id)
            liked = await uow.social.like(post_id, user_id, now)
            if liked:
                track(uow, self.analytics, post_liked(user_id, post, now))
            if liked and post.user_id != user_id:
                event = Event(
                    user_id=post.user_id,
                    kind=EventKind.POST_LIKED,
                    key=f"post_liked:{post_id}:{user_id}",
                    data={"postId": str(post_id), "actorId": str(user_id)},
                    group=f"post:{post_id}",
                )
                await self.notifier.tell(uow, event, now)
            await uow.commit()

    async def unlike(self, user_id: uuid.UUID, post_id: uuid.UUID) -> None:
        """Idempotent; unliking a post one can no longer reach still removes the like."""
        async with self.uow_factory() as uow:
            if await uow.social.get_post(post_id) is None:
                raise NotFound(f"no post {post_id}")
            await uow.social.unlike(post_id, user_id)
            await uow.commit()

    async def comment(
        self, user_id: uuid.UUID, email: str | None, post_id: uuid.UUID, body: str, now: datetime
    ) -> CommentItem:
        await self._not_suspended(user_id)  # a free check before the (maybe paid) review
        text = await self.review.comment(body, user_id=user_id, target=f"post:{post_id}")
        async with self.uow_factory() as uow:
            await uow.profiles.ensure(user_id, email)
            if await uow.safety.suspended(user_id):  # suspended while the review ran
                raise AccountSuspended()
            post = await _reach(uow, post_id, user_id)
            comment = Comment(
                id=uuid7(), post_id=post_id, user_id=user_id, body=text, created_at=now
            )
            await uow.social.add_comment(comment)
            track(uow, self.analytics, comment_added(user_id, post, now))  # never the text
            if post.user_id != user_id:
                event = Event(
                    user_id=post.user_id,
                    kind=EventKind.POST_COMMENTED,
                    key=f"post_commented:{comment.id}",
                    data={
                        "postId": str(post_id),
                        "commentId": str(comment.id),
                        "actorId": str(user_id),
                    },
                    group=f"post:{post_id}",
                )
                await self.notifier.tell(uow, event, now)
            me = await uow.social.get_profile(user_id) or SocialProfile(user_id=user_id)
            await uow.commit()
        author = Author(
            user_id=user_id,
            username=me.username,
            display_name=me.display_name,
            avatar_key=me.avatar_key,
        )
        view = CommentView(comment=comment, author=author)
        return CommentItem(view=view, avatar_url=self.urls.avatar(view.author))

    async def comments(
        self, post_id: uuid.UUID, viewer: uuid.UUID, *, after: Key | None, limit: int = FEED_PAGE
    ) -> Page[CommentItem]:
        async with self.uow_factory() as uow:
            await _reach(uow, post_id, viewer)
            views = await uow.social.comments(post_id, viewer, after=after, limit=limit + 1)
        items = [CommentItem(view=v, avatar_url=self.urls.avatar(v.author)) for v in views[:limit]]
        last = views[limit - 1].comment if len(views) > limit else None
        return Page(items=items, next_key=(last.created_at, last.id) if last else None)

    async def delete_comment(self, user_id: uuid.UUID, comment_id: uuid.UUID) -> None:
        """By its author or the post's author; anyone else: NotFound."""
        async with self.uow_factory() as uow:
            comment = await uow.social.get_comment(comment_id)
            if comment is None:
                raise NotFound(f"no comment {comment_id}")
            if comment.user_id != user_id:
                post = await uow.social.get_post(comment.post_id)
                if post is None or post.user_id != user_id:
                    raise NotFound(f"no comment {comment_id}")
            await uow.social.delete_comment(comment_id)
            await uow.commit()

    async def share(self, user_id: uuid.UUID, post_id: uuid.UUID) -> str:
        """The post's share id (stable: the same link every time), counted."""
        async with self.uow_factory() as uow:
            post = await _reach(uow, post_id, user_id)
            if post.visibility is Visibility.UNLISTED and post.user_id != user_id:
                # whoever reached an unlisted post holds its link already
                raise Forbidden("only the author shares an unlisted post")
            await uow.social.count_share(post_id)
            await uow.commit()
        return post.share_id


def check_visibility(value: str) -> Visibility:
    try:
        return Visibility(value)
    except ValueError:
        raise InvalidInput("visibility is public or unlisted", field="visibility") from None
