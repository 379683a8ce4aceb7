"""Row-level security of the notification tables (migration 0300), under the API roles
Supabase's clients use: a signed-in user reads their own notifications, preferences
and push tokens and writes none of them (the API does, counting and checking); the
push outbox, the once-only keys and Expo's tickets are the service's alone; anon
reads nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user

__all__ = ["db"]  # the fixture, used by name

Conn = psycopg.Connection[tuple[object, ...]]

USER_READABLE = ("notifications", "notification_preferences", "push_tokens")
SERVICE_ONLY = ("notification_deliveries", "notification_keys", "push_tickets")


def told(conn: Conn, user: uuid.UUID) -> uuid.UUID:
    """A notification, its key, its push outbox row and a ticket; preferences and a
    token: one row of each 0300 table for ``user`` (written as the service)."""
    n, d = uuid.uuid4(), uuid.uuid4()
    conn.execute(
        "INSERT INTO notifications (id, user_id, kind, category, data, created_at, updated_at)"
        " VALUES (%s, %s, 'job_succeeded', 'generation', '{}', now(), now())",
        (n, user),
    )
    conn.execute(
        "INSERT INTO notification_keys (user_id, key, notification_id) VALUES (%s, %s, %s)",
        (user, f"job_succeeded:{n}", n),
    )
    conn.execute(
        "INSERT INTO notification_deliveries (id, notification_id, user_id, seq, status,"
        " due_at, created_at) VALUES (%s, %s, %s, 1, 'pending', now(), now())",
        (d, n, user),
    )
    conn.execute(
        "INSERT INTO push_tickets (id, token, delivery_id, created_at) VALUES (%s, 't', %s, now())",
        (f"ticket-{n}", d),
    )
    conn.execute(
        "INSERT INTO notification_preferences (user_id, channels, time_zone, language,"
        " updated_at) VALUES (%s, '{}', 'UTC', 'en', now())",
        (user,),
    )
    conn.execute(
        "INSERT INTO push_tokens (token, user_id, platform, device_id, active, created_at,"
        " updated_at) VALUES (%s, %s, 'ios', 'phone', true, now(), now())",
        (f"ExponentPushToken[{user.hex}]", user),
    )
    return n


def test_a_user_reads_only_their_own_notifications_preferences_and_tokens(db: Conn) -> None:
    me, other = new_user(db), new_user(db)
    mine, _ = told(db, me), told(db, other)
    with acting_as(db, "authenticated", me) as conn:
        assert conn.execute("SELECT id FROM notifications").fetchall() == [(mine,)]
        for table in ("notification_preferences", "push_tokens"):
            rows = conn.execute(f"SELECT user_id FROM {table}").fetchall()
            assert rows == [(me,)], table


def test_a_token_without_a_user_reads_no_notification_rows(db: Conn) -> None:
    told(db, new_user(db))
    with acting_as(db, "authenticated") as conn:
        for table in USER_READABLE:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table


@pytest.mark.parametrize("table", SERVICE_ONLY)
def test_the_outbox_keys_and_tickets_are_the_services_alone(db: Conn, table: str) -> None:
    me = new_user(db)
    told(db, me)
    with acting_as(db, "authenticated", me) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {table}")
    with acting_as(db, "service_role") as conn:
        assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() != (0,)


@pytest.mark.parametrize("table", USER_READABLE + SERVICE_ONLY)
def test_anon_reads_no_notification_table(db: Conn, table: str) -> None:
    told(db, new_user(db))
    with acting_as(db, "anon") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {table}")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE notifications SET read_at = now() WHERE user_id = {me}",
        "DELETE FROM notifications WHERE user_id = {me}",
        "INSERT INTO notifications (id, user_id, kind, category, data, created_at, updated_at)"
        " VALUES (gen_random_uuid(), {me}, 'announcement', 'marketing', '{{}}', now(), now())",
        "UPDATE notification_preferences SET language = 'de' WHERE user_id = {me}",
        "INSERT INTO push_tokens (token, user_id, platform, device_id, active, created_at,"
        " updated_at) VALUES ('ExponentPushToken[x]', {me}, 'ios', 'p', true, now(), now())",
        "DELETE FROM push_tokens WHERE user_id = {me}",
        "UPDATE notification_deliveries SET status = 'sent' WHERE user_id = {me}",
        "DELETE FROM notification_keys WHERE user_id = {me}",
    ],
)
def test_a_client_writes_no_notification_rows(db: Conn, statement: str) -> None:
    me = new_user(db)
    told(db, me)
    with acting_as(db, "authenticated", me) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement.format(me=f"'{me}'"))
