"""The social side (issue #17): profiles' public columns, posts, likes, comments, blocks.

Every row is written by the API only, which checks, counts, moderates and notifies:
a signed-in client reads its own posts, likes, comments and blocks through
Supabase's API and writes none; ``anon`` sees nothing. The profile's names, which
0001 let a client update directly, are the API's now too (a username is unique
case-insensitively, lower case, and changes at most once per cooldown; names will
pass moderation): that grant is revoked.

Counters are kept by triggers on ``likes`` and ``comments``: every insert and delete
moves its post's ``like_count`` (and ``score``) or ``comment_count`` under the post's
row lock, exact under concurrency and through cascades (an account deleted with its
likes lowers the counts of the posts it liked).

``score`` is ``genstudio_hot(like_count, created_at)`` (genstudio.core.model.social.hot_score):
it moves only with likes, so the ``top`` feed pages by an index on (score, id).

Feed indexes are partial (public, visible posts): a feed page is an index scan of
its first rows, never a sort over the table.

Revision ID: 0200
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0200"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("posts", "likes", "comments", "blocks")
_UID = "(SELECT auth.uid())"
_LISTED = "visibility = 'public' AND state = 'visible'"
_STATES = "('visible', 'hidden', 'removed')"

_PROFILE_COLUMNS = (
    "bio text CHECK (char_length(bio) <= 300)",
    "is_private boolean NOT NULL DEFAULT false",
    "language text",
    "content_filters text[] NOT NULL DEFAULT '{}'",
    "username_changed_at timestamptz",
    "avatar_key text",
)

_SCHEMA = [
    """
    CREATE FUNCTION genstudio_hot(likes integer, created timestamptz)
    RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT log((greatest(likes, 0) + 1)::double precision)
             + (date_part('epoch', created) - 1767225600) / 45000
    $$
    """,
    f"""
    CREATE TABLE posts (
        id uuid PRIMARY KEY,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        asset_id uuid NOT NULL,
        media_kind text NOT NULL CHECK (media_kind IN ('image', 'video')),
        storage_key text NOT NULL,
        poster_key text,
        content_type text NOT NULL,
        width integer NOT NULL CHECK (width > 0),
        height integer NOT NULL CHECK (height > 0),
        duration_seconds double precision,
        caption text NOT NULL DEFAULT '' CHECK (char_length(caption) <= 2200),
        visibility text NOT NULL CHECK (visibility IN ('public', 'unlisted')),
        state text NOT NULL DEFAULT 'visible' CHECK (state IN {_STATES}),
        share_id text NOT NULL,
        like_count integer NOT NULL DEFAULT 0 CHECK (like_count >= 0),
        comment_count integer NOT NULL DEFAULT 0 CHECK (comment_count >= 0),
        share_count integer NOT NULL DEFAULT 0 CHECK (share_count >= 0),
        score double precision NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT posts_asset_key UNIQUE (asset_id),
        CONSTRAINT posts_share_id_key UNIQUE (share_id)
    )
    """,
    f"CREATE INDEX posts_feed_new ON posts (created_at DESC, id DESC) WHERE {_LISTED}",
    f"CREATE INDEX posts_feed_new_kind ON posts (media_kind, created_at DESC, id DESC)"
    f" WHERE {_LISTED}",
    f"CREATE INDEX posts_feed_top ON posts (score DESC, id DESC) WHERE {_LISTED}",
    f"CREATE INDEX posts_feed_top_kind ON posts (media_kind, score DESC, id DESC) WHERE {_LISTED}",
    "CREATE INDEX posts_user_created ON posts (user_id, created_at DESC, id DESC)",
    """
    CREATE TABLE likes (
        post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (post_id, user_id)
    )
    """,
    "CREATE INDEX likes_user_created ON likes (user_id, created_at DESC, post_id DESC)",
    f"""
    CREATE TABLE comments (
        id uuid PRIMARY KEY,
        post_id uuid NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
        user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 1000),
        state text NOT NULL DEFAULT 'visible' CHECK (state IN {_STATES}),
        created_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX comments_post_created ON comments (post_id, created_at, id)",
    "CREATE INDEX comments_user ON comments (user_id)",
    """
    CREATE TABLE blocks (
        blocker_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        blocked_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (blocker_id, blocked_id),
        CHECK (blocker_id <> blocked_id)
    )
    """,
    "CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id)",
    # counters: one row trigger each, so nothing that adds or removes a like or a
    # comment (the API, a cascade, an operator) can leave a count wrong
    """
    CREATE FUNCTION genstudio_count_like() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE posts SET like_count = like_count + 1,
                             score = genstudio_hot(like_count + 1, created_at)
             WHERE id = NEW.post_id;
            RETURN NEW;
        END IF;
        UPDATE posts SET like_count = like_count - 1,
                         score = genstudio_hot(like_count - 1, created_at)
         WHERE id = OLD.post_id;
        RETURN OLD;
    END $$
    """,
    """
    CREATE TRIGGER likes_count AFTER INSERT OR DELETE ON likes
    FOR EACH ROW EXECUTE FUNCTION genstudio_count_like()
    """,
    """
    CREATE FUNCTION genstudio_count_comment() RETURNS trigger LANGUAGE plpgsql
    SET search_path = public AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE posts SET comment_count = comment_count + 1 WHERE id = NEW.post_id;
            RETURN NEW;
        END IF;
        UPDATE posts SET comment_count = comment_count - 1 WHERE id = OLD.post_id;
        RETURN OLD;
    END $$
    """,
    """
    CREATE TRIGGER comments_count AFTER INSERT OR DELETE ON comments
    FOR EACH ROW EXECUTE FUNCTION genstudio_count_comment()
    """,
]

#: what a signed-in client may read of its own (RLS), by owner column
_OWN = {"posts": "user_id", "likes": "user_id", "comments": "user_id", "blocks": "blocker_id"}


def upgrade() -> None:
    for column in _PROFILE_COLUMNS:
        op.execute(f"ALTER TABLE profiles ADD COLUMN {column}")
    op.execute("REVOKE UPDATE (username, display_name, avatar_url) ON profiles FROM authenticated")
    for statement in _SCHEMA:
        op.execute(statement)
    for table in TABLES:
        # Supabase's default privileges hand new tables to the API roles: take them back
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated"
            f" USING ({_UID} = {_OWN[table]})"
        )
        op.execute(f"GRANT SELECT ON {table} TO authenticated")


def downgrade() -> None:
    for table in ("blocks", "comments", "likes", "posts"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS genstudio_count_comment()")
    op.execute("DROP FUNCTION IF EXISTS genstudio_count_like()")
    op.execute("DROP FUNCTION IF EXISTS genstudio_hot(integer, timestamptz)")
    op.execute("GRANT UPDATE (username, display_name, avatar_url) ON profiles TO authenticated")
    for column in reversed(_PROFILE_COLUMNS):
        op.execute(f"ALTER TABLE profiles DROP COLUMN IF EXISTS {column.split()[0]}")
