"""Row-level security of the social tables (migration 0200): a signed-in client reads
only its own posts, likes, comments and blocks and writes none; anon sees nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user

pytestmark = pytest.mark.postgres
__all__ = ["db"]  # the fixture, used by name
Conn = psycopg.Connection[tuple[object, ...]]


def a_post(conn: Conn, user_id: uuid.UUID) -> uuid.UUID:
    post_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO posts (id, user_id, asset_id, media_kind, storage_key, content_type,"
        " width, height, visibility, share_id, score)"
        " VALUES (%s, %s, gen_random_uuid(), 'image', 'k', 'image/png', 1, 1, 'public',"
        " %s, 0)",
        (post_id, user_id, uuid.uuid4().hex),
    )
    return post_id


def test_a_user_reads_only_their_own_social_rows(db: Conn) -> None:
    me, other = new_user(db), new_user(db)
    mine, theirs = a_post(db, me), a_post(db, other)
    db.execute("INSERT INTO likes (post_id, user_id) VALUES (%s, %s)", (theirs, me))
    db.execute("INSERT INTO likes (post_id, user_id) VALUES (%s, %s)", (mine, other))
    with acting_as(db, "authenticated", me) as conn:
        assert conn.execute("SELECT id FROM posts").fetchall() == [(mine,)]
        assert conn.execute("SELECT post_id FROM likes").fetchall() == [(theirs,)]
    with acting_as(db, "anon", None) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT id FROM posts")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO likes (post_id, user_id) VALUES ({post}, {me})",
        "INSERT INTO comments (id, post_id, user_id, body) VALUES (gen_random_uuid(), {post}, {me}, 'x')",
        "UPDATE posts SET like_count = 1000 WHERE user_id = {me}",
        "DELETE FROM posts WHERE user_id = {me}",
        "INSERT INTO blocks (blocker_id, blocked_id) VALUES ({me}, {post})",
        "UPDATE profiles SET username = 'mine' WHERE id = {me}",
    ],
)
@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_no_client_writes_social_rows_directly(db: Conn, statement: str, role: str) -> None:
    me = new_user(db)
    post = a_post(db, me)
    who = me if role == "authenticated" else None
    with acting_as(db, role, who) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement.format(me=f"'{me}'", post=f"'{post}'"))


def test_the_counters_follow_likes_and_comments_through_cascades(db: Conn) -> None:
    author, fan = new_user(db), new_user(db)
    post = a_post(db, author)
    db.execute("INSERT INTO likes (post_id, user_id) VALUES (%s, %s)", (post, fan))
    db.execute(
        "INSERT INTO comments (id, post_id, user_id, body) VALUES (gen_random_uuid(), %s, %s, 'x')",
        (post, fan),
    )
    assert db.execute(
        "SELECT like_count, comment_count FROM posts WHERE id = %s", (post,)
    ).fetchone() == (1, 1)
    db.execute("DELETE FROM profiles WHERE id = %s", (fan,))  # the fan's account goes
    assert db.execute(
        "SELECT like_count, comment_count FROM posts WHERE id = %s", (post,)
    ).fetchone() == (0, 0)
