"""Moderation (issue #19): the operator's rule list and the users' strikes.

- ``moderation_rules``: pattern, kind (word | regex), label (a reason code), action
  (refuse | rewrite). Read by every API process, cached and reloaded when the count or
  the latest ``updated_at`` changes (``core.services.moderation.rules``); the trigger
  keeps ``updated_at`` honest for edits made by hand in SQL.
- ``moderation_strikes``: one row per refusal a user caused (never the content: the
  reason, the surface and a reference such as a job id); enough within a window
  suspend generation (``core.model.moderation.StrikePolicy``). No foreign key to
  ``profiles``: a first-time user's first prompt may be refused before their profile
  is made (it is made by the first credit move).

RLS on and no policies, and every privilege revoked from the API roles: the service
role only. Clients neither read the rules (they would learn how to evade them) nor
write strikes.

Revision ID: 0410
Revises: 0400
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0410"
down_revision: str | Sequence[str] | None = "0400"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REASONS = (
    "'sexual_minors', 'sexual', 'violence_graphic', 'hate', 'self_harm', 'harassment',"
    " 'illegal', 'spam'"
)
_SURFACES = (
    "'prompt', 'caption', 'comment', 'username', 'bio', 'output', 'edit_input',"
    " 'training_photo', 'avatar'"
)


def upgrade() -> None:
    op.execute(
        f"""
        CREATE TABLE moderation_rules (
            id uuid PRIMARY KEY,
            pattern text NOT NULL CHECK (length(btrim(pattern)) > 0),
            kind text NOT NULL CHECK (kind IN ('word', 'regex')),
            label text NOT NULL CHECK (label IN ({_REASONS})),
            action text NOT NULL CHECK (action IN ('refuse', 'rewrite')),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute(
        """
        CREATE FUNCTION moderation_rules_touch() RETURNS trigger
        LANGUAGE plpgsql SET search_path = '' AS $$
        BEGIN
            NEW.updated_at := greatest(now(), OLD.updated_at + interval '1 microsecond');
            RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER moderation_rules_touch BEFORE UPDATE ON moderation_rules"
        " FOR EACH ROW EXECUTE FUNCTION moderation_rules_touch()"
    )
    op.execute(
        f"""
        CREATE TABLE moderation_strikes (
            id uuid PRIMARY KEY,
            user_id uuid NOT NULL,
            reason text NOT NULL CHECK (reason IN ({_REASONS})),
            surface text NOT NULL CHECK (surface IN ({_SURFACES})),
            reference text,
            created_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX moderation_strikes_user ON moderation_strikes (user_id, created_at)")
    for table in ("moderation_rules", "moderation_strikes"):
        op.execute(f"REVOKE ALL ON {table} FROM PUBLIC, anon, authenticated")
        op.execute(f"GRANT ALL ON {table} TO service_role")
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    op.execute(
        "REVOKE EXECUTE ON FUNCTION moderation_rules_touch() FROM PUBLIC, anon, authenticated"
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS moderation_strikes")
    op.execute("DROP TABLE IF EXISTS moderation_rules")
    op.execute("DROP FUNCTION IF EXISTS moderation_rules_touch()")
