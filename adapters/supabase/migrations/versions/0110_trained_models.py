"""Trained models (issue #16): the personal LoRAs training jobs make.

A row is written by the job processor when a training job succeeds (in the
transaction that settles its hold), renamed and deleted by the API; a signed-in
client may read its own models through Supabase's API and write none; ``anon``
sees nothing. A model keeps the photo set it was trained from (the set cannot be
deleted while a model refers to it).

Revision ID: 0110
Revises: 0100
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0110"
down_revision: str | Sequence[str] | None = "0100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UID = "(SELECT auth.uid())"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE trained_models (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL REFERENCES profiles (id) ON DELETE CASCADE,
            name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
            trigger_word text NOT NULL CHECK (trigger_word ~ '^[A-Za-z][A-Za-z0-9_-]{1,31}$'),
            base_model text NOT NULL,
            weights_key text NOT NULL UNIQUE,
            weights_bytes bigint NOT NULL CHECK (weights_bytes > 0),
            status text NOT NULL CHECK (status IN ('ready')),
            thumbnail_key text,
            photo_set_id uuid REFERENCES photo_sets (id),
            job_id uuid UNIQUE REFERENCES jobs (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        "CREATE INDEX trained_models_user_created ON trained_models (user_id, created_at DESC)"
    )
    op.execute("CREATE INDEX trained_models_photo_set ON trained_models (photo_set_id)")
    # the photo-set delete asks whether a queued or running training job uses the set
    op.execute(
        "CREATE INDEX jobs_training_photo_set ON jobs ((params->>'photo_set_id'))"
        " WHERE kind = 'training' AND status IN ('queued', 'dispatched', 'running')"
    )
    # Supabase's default privileges hand new tables to the API roles: take them back
    op.execute("REVOKE ALL ON trained_models FROM PUBLIC, anon, authenticated")
    op.execute("GRANT ALL ON trained_models TO service_role")
    op.execute("ALTER TABLE trained_models ENABLE ROW LEVEL SECURITY")
    op.execute(
        "CREATE POLICY trained_models_select_own ON trained_models FOR SELECT TO authenticated"
        f" USING ({_UID} = user_id)"
    )
    op.execute("GRANT SELECT ON trained_models TO authenticated")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS jobs_training_photo_set")
    op.execute("DROP TABLE IF EXISTS trained_models")
