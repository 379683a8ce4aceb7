"""The social repository's contract (genstudio.ports.repositories.social.SocialRepository) over
every unit-of-work adapter (memory, Postgres): what the feed shows and hides, exact
counters under concurrency, blocks both ways, keyset pages, username uniqueness."""

from __future__ import annotations

import asyncio
import math
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from genstudio.core.model.errors import AlreadyTaken
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.social import (
    Comment,
    FeedSort,
    Post,
    PostState,
    SocialProfile,
    Visibility,
    hot_score,
    new_share_id,
)
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def new_user(factory: UnitOfWorkFactory, *, private: bool = False) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user_id, None)
        if private:
            await uow.social.save_profile(SocialProfile(user_id=user_id, is_private=True))
        await uow.commit()
    return user_id


async def new_post(
    factory: UnitOfWorkFactory,
    user_id: uuid.UUID,
    at: datetime = T0,
    *,
    kind: MediaKind = MediaKind.IMAGE,
    visibility: Visibility = Visibility.PUBLIC,
    state: PostState = PostState.VISIBLE,
) -> Post:
    post = Post(
        id=uuid.uuid4(),
        user_id=user_id,
        asset_id=uuid.uuid4(),
        media_kind=kind,
        storage_key=f"{user_id}/{uuid.uuid4()}.png",
        poster_key=None,
        content_type="image/png",
        width=512,
        height=512,
        duration_seconds=None,
        caption="a cat",
        visibility=visibility,
        share_id=new_share_id(),
        created_at=at,
        updated_at=at,
        state=state,
    )
    async with factory() as uow:
        await uow.social.add_post(post)
        await uow.commit()
    return post


async def feed_ids(factory: UnitOfWorkFactory, viewer: uuid.UUID, **kw: object) -> list[uuid.UUID]:
    args: dict[str, object] = {"sort": FeedSort.NEW, "kind": None, "after": None, "limit": 1000}
    args |= kw
    async with factory() as uow:
        views = await uow.social.feed(viewer, now=T0 + timedelta(hours=1), **args)  # type: ignore[arg-type]
    return [v.post.id for v in views]


async def test_the_feed_shows_public_visible_posts_of_public_accounts_newest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    viewer, author, private = (
        await new_user(uow_factory),
        await new_user(uow_factory),
        await new_user(uow_factory, private=True),
    )
    older = await new_post(uow_factory, author, T0 - timedelta(minutes=2))
    newer = await new_post(uow_factory, author, T0 - timedelta(minutes=1))
    hidden = [
        await new_post(uow_factory, author, visibility=Visibility.UNLISTED),
        await new_post(uow_factory, author, state=PostState.HIDDEN),
        await new_post(uow_factory, author, state=PostState.REMOVED),
        await new_post(uow_factory, private),
    ]
    ids = await feed_ids(uow_factory, viewer, limit=1000)
    assert ids.index(newer.id) < ids.index(older.id)
    assert not {p.id for p in hidden} & set(ids)
    async with uow_factory() as uow:  # the private author still sees their own
        own = await uow.social.user_posts(private, private, after=None, limit=5)
        assert [v.post.id for v in own] == [hidden[3].id]


async def test_blocks_hide_posts_and_comments_both_ways(uow_factory: UnitOfWorkFactory) -> None:
    blocker, blocked, bystander = [await new_user(uow_factory) for _ in range(3)]
    by_blocker = await new_post(uow_factory, blocker)
    by_blocked = await new_post(uow_factory, blocked)
    async with uow_factory() as uow:
        comment = Comment(
            id=uuid.uuid4(), post_id=by_blocker.id, user_id=blocked, body="hi", created_at=T0
        )
        await uow.social.add_comment(comment)
        await uow.social.block(blocker, blocked, T0)
        await uow.social.block(blocker, blocked, T0)  # idempotent
        await uow.commit()
    assert by_blocked.id not in await feed_ids(uow_factory, blocker)
    assert by_blocker.id not in await feed_ids(uow_factory, blocked)
    assert {by_blocker.id, by_blocked.id} <= set(await feed_ids(uow_factory, bystander))
    async with uow_factory() as uow:
        assert await uow.social.blocked_between(blocked, blocker)
        assert await uow.social.comments(by_blocker.id, blocker, after=None, limit=10) == []
        seen = await uow.social.comments(by_blocker.id, bystander, after=None, limit=10)
        assert [v.comment.id for v in seen] == [comment.id]
        await uow.social.unblock(blocker, blocked)
        await uow.commit()
    assert by_blocked.id in await feed_ids(uow_factory, blocker)


async def test_feed_pages_by_keyset_and_filters_by_kind(uow_factory: UnitOfWorkFactory) -> None:
    viewer, author = await new_user(uow_factory), await new_user(uow_factory)
    start = T0 - timedelta(days=400)  # older than anything other tests add
    posts = [
        await new_post(
            uow_factory,
            author,
            start + timedelta(seconds=i),
            kind=MediaKind.VIDEO if i % 2 else MediaKind.IMAGE,
        )
        for i in range(5)
    ]
    mine = {p.id for p in posts}
    async with uow_factory() as uow:
        first = await uow.social.feed(
            viewer, sort=FeedSort.NEW, kind=MediaKind.VIDEO, after=None, limit=1000, now=T0
        )
    videos = [v.post.id for v in first if v.post.id in mine]
    assert videos == [posts[3].id, posts[1].id]
    last = posts[3]
    async with uow_factory() as uow:
        after = await uow.social.feed(
            viewer,
            sort=FeedSort.NEW,
            kind=None,
            after=(last.created_at, last.id),
            limit=2,
            now=T0,
        )
    assert [v.post.id for v in after] == [posts[2].id, posts[1].id]


async def test_likes_count_exactly_under_concurrency_and_move_the_score(
    uow_factory: UnitOfWorkFactory,
) -> None:
    author = await new_user(uow_factory)
    post = await new_post(uow_factory, author)
    fans = [await new_user(uow_factory) for _ in range(12)]

    async def like(user: uuid.UUID) -> bool:
        async with uow_factory() as uow:
            new = await uow.social.like(post.id, user, T0)
            await uow.commit()
            return new

    async def unlike(user: uuid.UUID) -> bool:
        async with uow_factory() as uow:
            gone = await uow.social.unlike(post.id, user)
            await uow.commit()
            return gone

    results = await asyncio.gather(*(like(u) for u in fans), *(like(u) for u in fans[:4]))
    assert sum(results) == 12  # the repeated likes were no-ops
    await asyncio.gather(*(unlike(u) for u in fans[:5]), *(unlike(u) for u in fans[:5]))
    async with uow_factory() as uow:
        found = await uow.social.get_post(post.id)
        assert found is not None and found.like_count == 7
        assert math.isclose(found.score, hot_score(7, post.created_at), rel_tol=1e-9)
        view = await uow.social.post_view(post.id, fans[6])
        assert view is not None and view.liked_by_me
        not_liked = await uow.social.post_view(post.id, fans[0])
        assert not_liked is not None and not not_liked.liked_by_me
        assert (await uow.social.counts(author)).likes_received == 7


async def test_comment_counts_follow_adds_and_deletes(uow_factory: UnitOfWorkFactory) -> None:
    author = await new_user(uow_factory)
    post = await new_post(uow_factory, author)
    users = [await new_user(uow_factory) for _ in range(6)]

    async def comment(user: uuid.UUID, i: int) -> uuid.UUID:
        c = Comment(
            id=uuid.uuid4(),
            post_id=post.id,
            user_id=user,
            body=f"nice {i}",
            created_at=T0 + timedelta(seconds=i),
        )
        async with uow_factory() as uow:
            await uow.social.add_comment(c)
            await uow.commit()
        return c.id

    ids = await asyncio.gather(*(comment(u, i) for i, u in enumerate(users)))

    async def delete(cid: uuid.UUID) -> bool:
        async with uow_factory() as uow:
            gone = await uow.social.delete_comment(cid)
            await uow.commit()
            return gone

    assert sum(await asyncio.gather(delete(ids[0]), delete(ids[0]), delete(ids[1]))) == 2
    async with uow_factory() as uow:
        found = await uow.social.get_post(post.id)
        assert found is not None and found.comment_count == 4
        page = await uow.social.comments(post.id, None, after=None, limit=2)
        assert [v.comment.id for v in page] == list(ids[2:4])
        rest = await uow.social.comments(
            post.id, None, after=(page[-1].comment.created_at, page[-1].comment.id), limit=5
        )
        assert [v.comment.id for v in rest] == list(ids[4:])


async def test_two_claims_of_one_username_one_wins(uow_factory: UnitOfWorkFactory) -> None:
    a, b = await new_user(uow_factory), await new_user(uow_factory)
    name = f"n{uuid.uuid4().hex[:12]}"

    async def claim(user: uuid.UUID) -> str:
        try:
            async with uow_factory() as uow:
                await uow.social.save_profile(SocialProfile(user_id=user, username=name))
                await asyncio.sleep(0.05)  # hold the claim while the other tries
                await uow.commit()
        except AlreadyTaken as exc:
            assert exc.field == "username"
            return "taken"
        return "won"

    assert sorted(await asyncio.gather(claim(a), claim(b))) == ["taken", "won"]
    async with uow_factory() as uow:
        holder = await uow.social.find_username(name.upper())
        assert holder is not None and holder.user_id in {a, b}


async def test_one_post_per_asset_and_deleting_a_post_takes_its_likes(
    uow_factory: UnitOfWorkFactory,
) -> None:
    author, fan = await new_user(uow_factory), await new_user(uow_factory)
    post = await new_post(uow_factory, author)
    again = msgspec.structs.replace(post, id=uuid.uuid4(), share_id=new_share_id())
    with pytest.raises(AlreadyTaken):
        async with uow_factory() as uow:
            await uow.social.add_post(again)
            await uow.commit()
    async with uow_factory() as uow:
        await uow.social.like(post.id, fan, T0)
        await uow.commit()
    async with uow_factory() as uow:
        await uow.social.delete_post(post.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.social.get_post(post.id) is None
        assert await uow.social.liked_posts(fan, after=None, limit=10) == []


async def test_top_ranks_by_likes_with_time_decay_within_the_window(
    uow_factory: UnitOfWorkFactory,
) -> None:
    viewer, author = await new_user(uow_factory), await new_user(uow_factory)
    fans = [await new_user(uow_factory) for _ in range(9)]
    old_hit = await new_post(uow_factory, author, T0 - timedelta(hours=10))
    fresh = await new_post(uow_factory, author, T0)
    too_old = await new_post(uow_factory, author, T0 - timedelta(days=8))
    async with uow_factory() as uow:
        for fan in fans:
            await uow.social.like(old_hit.id, fan, T0)
            await uow.social.like(too_old.id, fan, T0)
        await uow.commit()
    ids = await feed_ids(uow_factory, viewer, sort=FeedSort.TOP, limit=1000)
    # 9 likes (log10(10) = 1) are worth 12.5 h: the 10-hour-old post ranks first
    assert ids.index(old_hit.id) < ids.index(fresh.id)
    assert too_old.id not in ids


async def test_my_media_pages_newest_first_and_filters_by_kind(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """One kind alone is a query of its own (issue #19: ``GET /v1/me/content?kind=image``
    answered 500 on Postgres, which refused the single kind's two ORDER BY clauses)."""
    owner = await new_user(uow_factory)
    made: list[MediaAsset] = []
    for n, kind in enumerate([MediaKind.IMAGE, MediaKind.VIDEO, MediaKind.IMAGE]):
        asset_id = uuid.uuid4()
        made.append(
            MediaAsset(
                id=asset_id,
                user_id=owner,
                kind=kind,
                storage_key=f"{owner}/{asset_id}.bin",
                content_type="image/png" if kind is MediaKind.IMAGE else "video/mp4",
                width=64,
                height=64,
                byte_size=3,
                prompt="a cat",
                model_id="m",
                job_id=None,
                created_at=T0 + timedelta(minutes=n),
                duration_seconds=None if kind is MediaKind.IMAGE else 5.0,
            )
        )
    async with uow_factory() as uow:
        for asset in made:
            await uow.media.add(asset)
        await uow.commit()
    async with uow_factory() as uow:
        every = await uow.social.my_media(owner, kind=None, after=None, limit=10)
        images = await uow.social.my_media(owner, kind=MediaKind.IMAGE, after=None, limit=10)
        videos = await uow.social.my_media(owner, kind=MediaKind.VIDEO, after=None, limit=10)
        first = await uow.social.my_media(owner, kind=MediaKind.IMAGE, after=None, limit=1)
    assert [a.id for a in every] == [made[2].id, made[1].id, made[0].id]
    assert [a.id for a in images] == [made[2].id, made[0].id]
    assert [a.id for a in videos] == [made[1].id]
    assert [a.id for a in first] == [made[2].id]
