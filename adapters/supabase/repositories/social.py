"""The social side in Postgres (migration 0200).

Every statement is compiled once and prepared per connection (``Compiled``): a feed
page is one round trip. Lists are keyset pages; a first page compares with a key
past every row (``_TOP``) so that each list is one statement whatever the cursor.
Counters are the triggers' (0200): a like is one ``INSERT … ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from genstudio.adapters.supabase.compiled import Compiled
from genstudio.adapters.supabase.repositories.media import _asset
from genstudio.adapters.supabase.repositories.rows import Row, _Repository, _utc, _utc_or_none
from genstudio.core.model.errors import AlreadyTaken, DuplicateEntry
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.social import (
    TOP_WINDOW,
    Author,
    Comment,
    CommentView,
    ContentFilter,
    FeedSort,
    Key,
    Post,
    PostState,
    PostView,
    ProfileCounts,
    SocialProfile,
    Stats,
    Visibility,
)

_NOBODY = uuid.UUID(int=0)  # an anonymous viewer: blocks nobody, liked nothing
_LAST_ID = uuid.UUID(int=(1 << 128) - 1)
_LATEST = datetime(9999, 1, 1, tzinfo=UTC)
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_HIGHEST = 1e300

_POST_COLUMNS = (
    "p.id, p.user_id, p.asset_id, p.media_kind, p.storage_key, p.poster_key,"
    " p.content_type, p.width, p.height, p.duration_seconds, p.caption, p.visibility,"
    " p.state, p.share_id, p.like_count, p.comment_count, p.share_count, p.score,"
    " p.created_at, p.updated_at, a.username, a.display_name, a.avatar_key,"
    " EXISTS (SELECT 1 FROM likes l WHERE l.post_id = p.id AND l.user_id = :viewer) AS liked"
)
_LISTED = "p.visibility = 'public' AND p.state = 'visible' AND NOT a.is_private"
# two NOT EXISTS, one per direction: each is a primary-key probe of ``blocks``
_NOT_BLOCKED = (
    "NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = :viewer"
    " AND b.blocked_id = {who})"
    " AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.blocker_id = {who}"
    " AND b.blocked_id = :viewer)"
)
_FROM = "FROM posts p JOIN profiles a ON a.id = p.user_id"


def _feed_sql(sort: FeedSort, kind: bool) -> str:
    key = "p.created_at" if sort is FeedSort.NEW else "p.score"
    window = " AND p.created_at > :since" if sort is FeedSort.TOP else ""
    by_kind = " AND p.media_kind = :kind" if kind else ""
    return (
        f"SELECT {_POST_COLUMNS} {_FROM} WHERE {_LISTED}{by_kind}{window}"
        f" AND ({key}, p.id) < (:key, :id) AND {_NOT_BLOCKED.format(who='p.user_id')}"
        f" ORDER BY {key} DESC, p.id DESC LIMIT :limit"
    )


#: the feed's statements, by (sort, with a kind); bench/feed.py runs the same SQL
FEED_SQL = {(s, k): _feed_sql(s, k) for s in FeedSort for k in (False, True)}
_FEED = {key: Compiled(text(sql)) for key, sql in FEED_SQL.items()}

_POST_VIEW = Compiled(text(f"SELECT {_POST_COLUMNS} {_FROM} WHERE p.id = :post_id"))
_GET_POST = Compiled(text(f"SELECT {_POST_COLUMNS} {_FROM} WHERE p.id = :post_id"))
_BY_SHARE = Compiled(text(f"SELECT {_POST_COLUMNS} {_FROM} WHERE p.share_id = :share_id"))
_OWN_POSTS = Compiled(
    text(
        f"SELECT {_POST_COLUMNS} {_FROM} WHERE p.user_id = :author"
        " AND (p.created_at, p.id) < (:key, :id) ORDER BY p.created_at DESC, p.id DESC"
        " LIMIT :limit"
    )
)
_USER_POSTS = Compiled(
    text(
        f"SELECT {_POST_COLUMNS} {_FROM} WHERE p.user_id = :author AND {_LISTED}"
        f" AND (p.created_at, p.id) < (:key, :id) AND {_NOT_BLOCKED.format(who='p.user_id')}"
        " ORDER BY p.created_at DESC, p.id DESC LIMIT :limit"
    )
)
_LIKED = Compiled(
    text(
        f"SELECT {_POST_COLUMNS}, k.created_at AS liked_at FROM likes k"
        " JOIN posts p ON p.id = k.post_id JOIN profiles a ON a.id = p.user_id"
        " WHERE k.user_id = :viewer AND (k.created_at, k.post_id) < (:key, :id)"
        f" AND (p.user_id = :viewer OR ({_LISTED}"
        f" AND {_NOT_BLOCKED.format(who='p.user_id')}))"
        " ORDER BY k.created_at DESC, k.post_id DESC LIMIT :limit"
    )
)
_COMMENTS = Compiled(
    text(
        "SELECT c.id, c.post_id, c.user_id, c.body, c.state, c.created_at, a.username,"
        " a.display_name, a.avatar_key FROM comments c JOIN profiles a ON a.id = c.user_id"
        " WHERE c.post_id = :post_id AND c.state = 'visible'"
        f" AND (c.created_at, c.id) > (:key, :id) AND {_NOT_BLOCKED.format(who='c.user_id')}"
        " ORDER BY c.created_at, c.id LIMIT :limit"
    )
)
_MEDIA_SHARED = (
    "id, user_id, storage_key, content_type, width, height, byte_size, prompt, model_id,"
    " job_id, is_public, created_at, caption"
)


def _media_sql(kinds: tuple[str, ...]) -> str:
    parts = []
    for kind in kinds:
        extra = (
            "NULL::double precision AS duration_seconds, NULL::text AS thumbnail_key"
            if kind == "image"
            else "duration_seconds, thumbnail_key"
        )
        parts.append(
            f"(SELECT {_MEDIA_SHARED}, '{kind}' AS kind, {extra} FROM {kind}s"
            " WHERE user_id = :user_id AND (created_at, id) < (:key, :id)"
            " ORDER BY created_at DESC, id DESC LIMIT :limit)"
        )
    # a derived table: one kind alone would be "(SELECT ... ORDER BY) ORDER BY", which
    # PostgreSQL refuses (multiple ORDER BY clauses)
    union = " UNION ALL ".join(parts)
    return f"SELECT * FROM ({union}) AS media ORDER BY created_at DESC, id DESC LIMIT :limit"


_MY_MEDIA = {
    None: Compiled(text(_media_sql(("image", "video")))),
    MediaKind.IMAGE: Compiled(text(_media_sql(("image",)))),
    MediaKind.VIDEO: Compiled(text(_media_sql(("video",)))),
}

_PROFILE_COLUMNS = (
    "id, username, display_name, bio, avatar_key, is_private, language, content_filters,"
    " username_changed_at, analytics"
)
_GET_PROFILE = Compiled(text(f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE id = :user_id"))
_FIND_USERNAME = Compiled(
    text(f"SELECT {_PROFILE_COLUMNS} FROM profiles WHERE lower(username) = :username")
)
_SAVE_PROFILE = Compiled(
    text(
        "UPDATE profiles SET username = :username, display_name = :display_name, bio = :bio,"
        " avatar_key = :avatar_key, is_private = :is_private, language = :language,"
        " content_filters = :content_filters, username_changed_at = :username_changed_at,"
        " analytics = :analytics, updated_at = now() WHERE id = :user_id RETURNING id"
    )
)
# an erased account (issue #17) is never tracked again either
_ANALYTICS_OPT_OUTS = Compiled(
    text(
        "SELECT id FROM profiles WHERE id = ANY(:ids) AND (NOT analytics OR erased_at IS NOT NULL)"
    )
)
_ADD_POST = Compiled(
    text(
        "INSERT INTO posts (id, user_id, asset_id, media_kind, storage_key, poster_key,"
        " content_type, width, height, duration_seconds, caption, visibility, state,"
        " share_id, score, created_at, updated_at) VALUES (:id, :user_id, :asset_id,"
        " :media_kind, :storage_key, :poster_key, :content_type, :width, :height,"
        " :duration_seconds, :caption, :visibility, :state, :share_id,"
        " genstudio_hot(0, :created_at), :created_at, :updated_at)"
    )
)
_UPDATE_POST = Compiled(
    text(
        "UPDATE posts SET caption = :caption, visibility = :visibility, state = :state,"
        " updated_at = :updated_at WHERE id = :id RETURNING id"
    )
)
_DELETE_POST = Compiled(text("DELETE FROM posts WHERE id = :id"))
_COUNT_SHARE = Compiled(
    text("UPDATE posts SET share_count = share_count + 1 WHERE id = :id RETURNING id")
)
_LIKE = Compiled(
    text(
        "INSERT INTO likes (post_id, user_id, created_at) VALUES (:post_id, :user_id, :at)"
        " ON CONFLICT DO NOTHING RETURNING post_id"
    )
)
_UNLIKE = Compiled(
    text("DELETE FROM likes WHERE post_id = :post_id AND user_id = :user_id RETURNING post_id")
)
_ADD_COMMENT = Compiled(
    text(
        "INSERT INTO comments (id, post_id, user_id, body, state, created_at)"
        " VALUES (:id, :post_id, :user_id, :body, :state, :created_at)"
    )
)
_GET_COMMENT = Compiled(
    text("SELECT id, post_id, user_id, body, state, created_at FROM comments WHERE id = :id")
)
_DELETE_COMMENT = Compiled(text("DELETE FROM comments WHERE id = :id RETURNING id"))
_BLOCK = Compiled(
    text(
        "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (:a, :b, :at)"
        " ON CONFLICT DO NOTHING"
    )
)
_UNBLOCK = Compiled(text("DELETE FROM blocks WHERE blocker_id = :a AND blocked_id = :b"))
_BLOCKED = Compiled(
    text(
        "SELECT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = :a AND blocked_id = :b)"
        " OR (blocker_id = :b AND blocked_id = :a)) AS blocked"
    )
)
_COUNTS = Compiled(
    text(
        "SELECT count(*) FILTER (WHERE visibility = 'public' AND state = 'visible') AS listed,"
        " count(*) AS posts, coalesce(sum(like_count), 0) AS likes"
        " FROM posts WHERE user_id = :user_id"
    )
)
# aggregates over indexed ranges of the user's rows (jobs_user_created_idx,
# credit_ledger_user_created_idx, posts_user_created): never rows counted in Python
_JOB_COUNTS = Compiled(
    text(
        "SELECT kind, count(*) AS n FROM jobs WHERE user_id = :user_id"
        " AND status = 'succeeded' GROUP BY kind"
    )
)
_CREDIT_TOTALS = Compiled(
    text(
        "SELECT coalesce(-sum(amount) FILTER (WHERE kind IN ('hold', 'release')), 0) AS spent,"
        " coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0) AS bought"
        " FROM credit_ledger WHERE user_id = :user_id"
    )
)


def _post(row: Row) -> Post:
    return Post(
        id=row["id"],
        user_id=row["user_id"],
        asset_id=row["asset_id"],
        media_kind=MediaKind(row["media_kind"]),
        storage_key=row["storage_key"],
        poster_key=row["poster_key"],
        content_type=row["content_type"],
        width=row["width"],
        height=row["height"],
        duration_seconds=row["duration_seconds"],
        caption=row["caption"],
        visibility=Visibility(row["visibility"]),
        state=PostState(row["state"]),
        share_id=row["share_id"],
        like_count=row["like_count"],
        comment_count=row["comment_count"],
        share_count=row["share_count"],
        score=row["score"],
        created_at=_utc(row["created_at"]),
        updated_at=_utc(row["updated_at"]),
    )


def _author(row: Row, user_id: uuid.UUID) -> Author:
    return Author(
        user_id=user_id,
        username=row["username"],
        display_name=row["display_name"],
        avatar_key=row["avatar_key"],
    )


def _view(row: Row) -> PostView:
    return PostView(
        post=_post(row),
        author=_author(row, row["user_id"]),
        liked_by_me=row["liked"],
        liked_at=_utc_or_none(row.get("liked_at")),
    )


def _profile(row: Row) -> SocialProfile:
    return SocialProfile(
        user_id=row["id"],
        username=row["username"],
        display_name=row["display_name"],
        bio=row["bio"],
        avatar_key=row["avatar_key"],
        is_private=row["is_private"],
        language=row["language"],
        content_filters=tuple(ContentFilter(f) for f in row["content_filters"]),
        username_changed_at=_utc_or_none(row["username_changed_at"]),
        analytics=row["analytics"],
    )


def _comment(row: Row) -> Comment:
    return Comment(
        id=row["id"],
        post_id=row["post_id"],
        user_id=row["user_id"],
        body=row["body"],
        state=PostState(row["state"]),
        created_at=_utc(row["created_at"]),
    )


def _page(after: Key | None, first: datetime | float) -> dict[str, Any]:
    key, last_id = after if after is not None else (first, _LAST_ID)
    return {"key": key, "id": last_id}


class SqlSocial(_Repository):
    # --- profiles ------------------------------------------------------------------

    async def get_profile(self, user_id: uuid.UUID) -> SocialProfile | None:
        row = await self._sql.one(_GET_PROFILE, {"user_id": user_id})
        return None if row is None else _profile(row)

    async def find_username(self, username: str) -> SocialProfile | None:
        row = await self._sql.one(_FIND_USERNAME, {"username": username.lower()})
        return None if row is None else _profile(row)

    async def save_profile(self, profile: SocialProfile) -> None:
        values = {
            "user_id": profile.user_id,
            "username": profile.username,
            "display_name": profile.display_name,
            "bio": profile.bio,
            "avatar_key": profile.avatar_key,
            "is_private": profile.is_private,
            "language": profile.language,
            "content_filters": [f.value for f in profile.content_filters],
            "username_changed_at": profile.username_changed_at,
            "analytics": profile.analytics,
        }
        try:
            # a concurrent claim of the name waits on the unique index for the first
            # transaction's end, then fails here
            await self._sql.one(_SAVE_PROFILE, values)
        except DuplicateEntry:
            raise AlreadyTaken(f"{profile.username!r} is taken", field="username") from None

    async def analytics_opt_outs(self, user_ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
        if not user_ids:
            return set()
        rows = await self._sql.all(_ANALYTICS_OPT_OUTS, {"ids": list(user_ids)})
        return {row["id"] for row in rows}

    # --- posts ---------------------------------------------------------------------

    async def add_post(self, post: Post) -> None:
        values = {
            "id": post.id,
            "user_id": post.user_id,
            "asset_id": post.asset_id,
            "media_kind": post.media_kind.value,
            "storage_key": post.storage_key,
            "poster_key": post.poster_key,
            "content_type": post.content_type,
            "width": post.width,
            "height": post.height,
            "duration_seconds": post.duration_seconds,
            "caption": post.caption,
            "visibility": post.visibility.value,
            "state": post.state.value,
            "share_id": post.share_id,
            "created_at": post.created_at,
            "updated_at": post.updated_at,
        }
        try:
            await self._sql.run(_ADD_POST, values)
        except DuplicateEntry:
            raise AlreadyTaken("this asset is published already", field="assetId") from None

    async def get_post(self, post_id: uuid.UUID) -> Post | None:
        row = await self._sql.one(_GET_POST, {"post_id": post_id, "viewer": _NOBODY})
        return None if row is None else _post(row)

    async def by_share_id(self, share_id: str) -> Post | None:
        row = await self._sql.one(_BY_SHARE, {"share_id": share_id, "viewer": _NOBODY})
        return None if row is None else _post(row)

    async def update_post(self, post: Post) -> None:
        values = {
            "id": post.id,
            "caption": post.caption,
            "visibility": post.visibility.value,
            "state": post.state.value,
            "updated_at": post.updated_at,
        }
        await self._sql.one(_UPDATE_POST, values)

    async def delete_post(self, post_id: uuid.UUID) -> None:
        await self._sql.run(_DELETE_POST, {"id": post_id})

    async def count_share(self, post_id: uuid.UUID) -> None:
        await self._sql.one(_COUNT_SHARE, {"id": post_id})

    # --- likes and comments --------------------------------------------------------

    async def like(self, post_id: uuid.UUID, user_id: uuid.UUID, at: datetime) -> bool:
        row = await self._sql.one(_LIKE, {"post_id": post_id, "user_id": user_id, "at": at})
        return row is not None

    async def unlike(self, post_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        row = await self._sql.one(_UNLIKE, {"post_id": post_id, "user_id": user_id})
        return row is not None

    async def add_comment(self, comment: Comment) -> None:
        values = {
            "id": comment.id,
            "post_id": comment.post_id,
            "user_id": comment.user_id,
            "body": comment.body,
            "state": comment.state.value,
            "created_at": comment.created_at,
        }
        await self._sql.run(_ADD_COMMENT, values)

    async def get_comment(self, comment_id: uuid.UUID) -> Comment | None:
        row = await self._sql.one(_GET_COMMENT, {"id": comment_id})
        return None if row is None else _comment(row)

    async def delete_comment(self, comment_id: uuid.UUID) -> bool:
        return await self._sql.one(_DELETE_COMMENT, {"id": comment_id}) is not None

    # --- blocks --------------------------------------------------------------------

    async def block(self, blocker: uuid.UUID, blocked: uuid.UUID, at: datetime) -> None:
        await self._sql.run(_BLOCK, {"a": blocker, "b": blocked, "at": at})

    async def unblock(self, blocker: uuid.UUID, blocked: uuid.UUID) -> None:
        await self._sql.run(_UNBLOCK, {"a": blocker, "b": blocked})

    async def blocked_between(self, a: uuid.UUID, b: uuid.UUID) -> bool:
        row = await self._sql.one(_BLOCKED, {"a": a, "b": b})
        return bool(row and row["blocked"])

    # --- reads ---------------------------------------------------------------------

    async def post_view(self, post_id: uuid.UUID, viewer: uuid.UUID | None) -> PostView | None:
        row = await self._sql.one(_POST_VIEW, {"post_id": post_id, "viewer": viewer or _NOBODY})
        return None if row is None else _view(row)

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
        values = {"viewer": viewer, "limit": limit}
        values |= _page(after, _LATEST if sort is FeedSort.NEW else _HIGHEST)
        if kind is not None:
            values["kind"] = kind.value
        if sort is FeedSort.TOP:
            values["since"] = now - TOP_WINDOW
        rows = await self._sql.all(_FEED[sort, kind is not None], values)
        return [_view(row) for row in rows]

    async def user_posts(
        self, author: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[PostView]:
        statement = _OWN_POSTS if viewer == author else _USER_POSTS
        values = {"author": author, "viewer": viewer or _NOBODY, "limit": limit}
        rows = await self._sql.all(statement, values | _page(after, _LATEST))
        return [_view(row) for row in rows]

    async def liked_posts(
        self, viewer: uuid.UUID, *, after: Key | None, limit: int
    ) -> list[PostView]:
        values = {"viewer": viewer, "limit": limit} | _page(after, _LATEST)
        return [_view(row) for row in await self._sql.all(_LIKED, values)]

    async def comments(
        self, post_id: uuid.UUID, viewer: uuid.UUID | None, *, after: Key | None, limit: int
    ) -> list[CommentView]:
        key, last = after if after is not None else (_EARLIEST, _NOBODY)
        values = {
            "post_id": post_id,
            "viewer": viewer or _NOBODY,
            "limit": limit,
            "key": key,
            "id": last,
        }
        rows = await self._sql.all(_COMMENTS, values)
        return [CommentView(comment=_comment(r), author=_author(r, r["user_id"])) for r in rows]

    async def my_media(
        self, user_id: uuid.UUID, *, kind: MediaKind | None, after: Key | None, limit: int
    ) -> list[MediaAsset]:
        values = {"user_id": user_id, "limit": limit} | _page(after, _LATEST)
        return [_asset(row) for row in await self._sql.all(_MY_MEDIA[kind], values)]

    async def counts(self, user_id: uuid.UUID) -> ProfileCounts:
        row = await self._sql.one(_COUNTS, {"user_id": user_id})
        assert row is not None  # an aggregate always answers one row
        return ProfileCounts(posts=int(row["listed"]), likes_received=int(row["likes"]))

    async def stats(self, user_id: uuid.UUID) -> Stats:
        jobs = await self._sql.all(_JOB_COUNTS, {"user_id": user_id})
        credits = await self._sql.one(_CREDIT_TOTALS, {"user_id": user_id})
        posts = await self._sql.one(_COUNTS, {"user_id": user_id})
        assert credits is not None and posts is not None
        by_kind = {row["kind"]: int(row["n"]) for row in jobs}
        return Stats(
            generations={k: by_kind.get(k, 0) for k in ("image", "edit", "video")},
            credits_spent=int(credits["spent"]),
            credits_bought=int(credits["bought"]),
            likes_received=int(posts["likes"]),
            posts=int(posts["posts"]),
            models_trained=by_kind.get("training", 0),
        )
