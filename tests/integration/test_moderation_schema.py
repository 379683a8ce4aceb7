"""The moderation tables (migration 0410) as Supabase's API roles see them: nothing.
Clients neither read the rules (they would learn how to evade them) nor read or write
strikes; only the service role does."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user

pytestmark = pytest.mark.postgres
__all__ = ["db"]  # the fixture, used by name

Conn = psycopg.Connection[tuple[object, ...]]


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM moderation_rules",
        "INSERT INTO moderation_rules (id, pattern, kind, label, action)"
        " VALUES (gen_random_uuid(), 'x', 'word', 'spam', 'refuse')",
        "DELETE FROM moderation_rules",
        "TRUNCATE moderation_rules",
        "SELECT * FROM moderation_strikes",
        "INSERT INTO moderation_strikes (id, user_id, reason, surface, created_at)"
        " VALUES (gen_random_uuid(), {me}, 'spam', 'prompt', now())",
        "DELETE FROM moderation_strikes",
    ],
)
def test_api_roles_cannot_touch_the_moderation_tables(db: Conn, role: str, statement: str) -> None:
    me = new_user(db)
    with acting_as(db, role, me) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement.format(me=f"'{me}'"))


def test_the_database_refuses_unknown_labels_and_kinds(db: Conn) -> None:
    for values in (
        "'x', 'word', 'nudity', 'refuse'",
        "'x', 'glob', 'spam', 'refuse'",
        "' ', 'word', 'spam', 'refuse'",
    ):
        with pytest.raises(errors.CheckViolation):
            db.execute(
                "INSERT INTO moderation_rules (id, pattern, kind, label, action)"
                f" VALUES (gen_random_uuid(), {values})"
            )


def test_editing_a_rule_moves_its_updated_at(db: Conn) -> None:
    row = db.execute(
        "INSERT INTO moderation_rules (id, pattern, kind, label, action, updated_at)"
        " VALUES (gen_random_uuid(), 'x', 'word', 'spam', 'refuse', now() + interval '1 day')"
        " RETURNING id, updated_at"
    ).fetchone()
    assert row is not None
    after = db.execute(
        "UPDATE moderation_rules SET pattern = 'y' WHERE id = %s RETURNING updated_at", (row[0],)
    ).fetchone()
    assert after is not None
    assert after[0] > row[1]  # type: ignore[operator]
    db.execute("DELETE FROM moderation_rules WHERE id = %s", (row[0],))
