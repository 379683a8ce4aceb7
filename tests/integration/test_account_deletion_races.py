"""Deleting an account while others like its posts, and while it likes others' posts,
on real Postgres: every liker gets its like or a 404 (NotFound), nothing else; no
like is left pointing at a deleted post and every post's like count equals its likes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.errors import NotFound
from genstudio.core.model.social import Visibility
from tests.contract.test_safety import T0, World

pytestmark = pytest.mark.postgres


async def test_deleting_an_account_while_its_posts_are_liked(pg_engine: Any) -> None:
    world = World(SqlUnitOfWorkFactory(pg_engine))
    doomed, other = await world.user(), await world.user()
    doomed_posts = [await world.post(doomed) for _ in range(3)]
    others_post = await world.post(other)
    likers = [await world.user() for _ in range(12)]
    # the doomed account liked someone else's post: its deletion lowers that count
    await world.posts.like(doomed, None, others_post, T0)

    async def like(user: uuid.UUID, post: uuid.UUID, rounds: int) -> list[str]:
        # like and unlike in turn until the post is gone (or ``rounds`` are done)
        seen: list[str] = []
        for i in range(rounds):
            try:
                if i % 2 == 0:
                    await world.posts.like(user, None, post, T0)
                else:
                    await world.posts.unlike(user, post)
                seen.append("ok")
            except NotFound:
                seen.append("404")
                break
        return seen

    async def delete_soon() -> None:
        await asyncio.sleep(0.05)  # the likers are under way by then
        await world.deletion.delete(doomed, None)

    likes = [like(u, doomed_posts[i % 3], 200) for i, u in enumerate(likers)]
    likes += [like(u, others_post, 3) for u in likers[:4]]
    outcomes = await asyncio.gather(delete_soon(), *likes, return_exceptions=True)
    assert outcomes[0] is None  # the deletion itself succeeded
    for seen in outcomes[1:13]:
        # each liker of a deleted post got its likes and unlikes, then one 404
        assert isinstance(seen, list) and seen[-1] == "404" and set(seen[:-1]) <= {"ok"}
    assert outcomes[-4:] == [["ok"] * 3] * 4  # the other post never went away

    async with pg_engine.connect() as conn:
        orphans = await conn.scalar(
            text(
                "SELECT count(*) FROM likes l LEFT JOIN posts p ON p.id = l.post_id"
                " WHERE p.id IS NULL"
            )
        )
        wrong = await conn.scalar(
            text(
                "SELECT count(*) FROM posts p WHERE p.like_count <>"
                " (SELECT count(*) FROM likes l WHERE l.post_id = p.id)"
            )
        )
        left = await conn.scalar(
            text("SELECT count(*) FROM posts WHERE user_id = :u"), {"u": doomed}
        )
        doomed_likes = await conn.scalar(
            text("SELECT count(*) FROM likes WHERE user_id = :u"), {"u": doomed}
        )
    assert (orphans, wrong, left, doomed_likes) == (0, 0, 0, 0)
    after = await world.posts.get(others_post, other)
    assert after.view.post.like_count == 4  # its three steps end liked; the doomed one's went
    # and publishing stays possible for everyone else
    asset = await world.asset(other)
    await world.posts.publish(
        other, None, asset_id=asset.id, caption="", visibility=Visibility.PUBLIC, now=T0
    )
