"""Training photos (issue #16): a user's photo sets and the verdict on each photo.

Rows are written by the API only (it counts photos and sets, and checks each photo
before storing it): a signed-in client may read its own sets and photos through
Supabase's API and write none; ``anon`` sees nothing.

Revision ID: 0100
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0100"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("photo_sets", "training_photos")
_UID = "(SELECT auth.uid())"

_REASONS = (
    "'unreadable', 'unsupported_format', 'too_small', 'blurry', 'too_dark', 'overexposed',"
    " 'no_face', 'several_faces', 'face_too_small', 'duplicate'"
)


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE photo_sets (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            name text CHECK (char_length(name) BETWEEN 1 AND 100),
            created_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE INDEX photo_sets_user_created ON photo_sets (user_id, created_at DESC)")
    op.execute(
        f"""
        CREATE TABLE training_photos (
            id uuid PRIMARY KEY,
            set_id uuid NOT NULL REFERENCES photo_sets (id) ON DELETE CASCADE,
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            storage_key text UNIQUE,
            content_type text,
            width integer NOT NULL CHECK (width >= 0),
            height integer NOT NULL CHECK (height >= 0),
            byte_size integer NOT NULL CHECK (byte_size >= 0),
            measures jsonb,
            accepted boolean NOT NULL,
            reasons text[] NOT NULL DEFAULT '{{}}'
                CHECK (reasons <@ ARRAY[{_REASONS}]::text[]),
            score integer NOT NULL CHECK (score BETWEEN 0 AND 100),
            created_at timestamptz NOT NULL DEFAULT now(),
            CHECK (accepted = (cardinality(reasons) = 0)),
            CHECK ((storage_key IS NULL) = (measures IS NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX training_photos_set_created ON training_photos (set_id, created_at, id)"
    )
    for table in TABLES:
        # Supabase's default privileges hand new tables to the API roles: take them back
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {table}_select_own ON {table} FOR SELECT TO authenticated"
            f" USING ({_UID} = user_id)"
        )
        op.execute(f"GRANT SELECT ON {table} TO authenticated")


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS training_photos")
    op.execute("DROP TABLE IF EXISTS photo_sets")
