"""Row-level security and guarantees of the trust-and-safety tables (migration 0210):
a reporter reads their own reports and writes none; nobody but the API reads the
moderators' audit log, and nobody, the API included, edits or deletes it."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user

pytestmark = pytest.mark.postgres
__all__ = ["db"]  # the fixture, used by name
Conn = psycopg.Connection[tuple[object, ...]]


def a_report(conn: Conn, reporter: uuid.UUID, target: uuid.UUID) -> uuid.UUID:
    report_id = uuid.uuid4()
    conn.execute(
        "INSERT INTO reports (id, reporter_id, target_kind, target_id, target_user_id, reason)"
        " VALUES (%s, %s, 'user', %s, %s, 'spam')",
        (report_id, reporter, target, target),
    )
    return report_id


def test_a_reporter_reads_only_their_own_reports(db: Conn) -> None:
    me, other, target = new_user(db), new_user(db), new_user(db)
    mine, _ = a_report(db, me, target), a_report(db, other, target)
    with acting_as(db, "authenticated", me) as conn:
        assert conn.execute("SELECT id FROM reports").fetchall() == [(mine,)]
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT id FROM moderation_audit_log")
    with acting_as(db, "anon", None) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT id FROM reports")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO reports (id, reporter_id, target_kind, target_id, target_user_id, reason)"
        " VALUES (gen_random_uuid(), {me}, 'user', {me}, {me}, 'spam')",
        "UPDATE reports SET status = 'dismissed' WHERE reporter_id = {me}",
        "DELETE FROM reports WHERE reporter_id = {me}",
        "INSERT INTO moderation_audit_log (id, action, target_kind, target_id)"
        " VALUES (gen_random_uuid(), 'dismiss', 'user', {me})",
        "UPDATE profiles SET suspended_at = NULL WHERE id = {me}",
    ],
)
@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_no_client_writes_reports_or_the_audit_log(db: Conn, statement: str, role: str) -> None:
    me = new_user(db)
    a_report(db, me, new_user(db))
    who = me if role == "authenticated" else None
    with acting_as(db, role, who) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement.format(me=f"'{me}'"))


def test_one_open_report_per_reporter_and_target_but_a_new_one_after_resolution(
    db: Conn,
) -> None:
    me, target = new_user(db), new_user(db)
    first = a_report(db, me, target)
    with pytest.raises(errors.UniqueViolation):
        a_report(db, me, target)
    db.execute("UPDATE reports SET status = 'resolved' WHERE id = %s", (first,))
    a_report(db, me, target)


def test_the_audit_log_is_append_only_for_every_role(db: Conn) -> None:
    entry = uuid.uuid4()
    db.execute(
        "INSERT INTO moderation_audit_log (id, action, target_kind, target_id, note)"
        " VALUES (%s, 'dismiss', 'user', gen_random_uuid(), 'ok')",
        (entry,),
    )
    for statement in (
        "UPDATE moderation_audit_log SET note = 'edited' WHERE id = %s",
        "DELETE FROM moderation_audit_log WHERE id = %s",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            db.execute(statement, (entry,))
    assert db.execute(
        "SELECT note FROM moderation_audit_log WHERE id = %s", (entry,)
    ).fetchall() == [("ok",)]
