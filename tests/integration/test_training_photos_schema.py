"""Training photos' tables (migration 0100) as Supabase's API roles see them: a user
reads only their own sets and photos and writes none; anon sees nothing."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user

pytestmark = pytest.mark.postgres
__all__ = ["db"]  # the fixture, used by name

Conn = psycopg.Connection[tuple[object, ...]]


def add_set_with_photo(conn: Conn, user_id: uuid.UUID) -> tuple[uuid.UUID, uuid.UUID]:
    set_id, photo_id = uuid.uuid4(), uuid.uuid4()
    conn.execute("INSERT INTO photo_sets (id, user_id) VALUES (%s, %s)", (set_id, user_id))
    conn.execute(
        "INSERT INTO training_photos (id, set_id, user_id, storage_key, content_type, width,"
        " height, byte_size, measures, accepted, reasons, score)"
        " VALUES (%s, %s, %s, %s, 'image/jpeg', 8, 8, 10, '{}', false, '{blurry}', 3)",
        (photo_id, set_id, user_id, f"{user_id}/training/{set_id}/{photo_id}.jpg"),
    )
    return set_id, photo_id


def test_a_user_reads_only_their_own_sets_and_photos(db: Conn) -> None:
    me, stranger = new_user(db), new_user(db)
    my_set, my_photo = add_set_with_photo(db, me)
    add_set_with_photo(db, stranger)
    with acting_as(db, "authenticated", me) as conn:
        assert conn.execute("SELECT id FROM photo_sets").fetchall() == [(my_set,)]
        assert conn.execute("SELECT id FROM training_photos").fetchall() == [(my_photo,)]


def test_anon_sees_no_sets_or_photos(db: Conn) -> None:
    add_set_with_photo(db, new_user(db))
    for table in ("photo_sets", "training_photos"):
        with acting_as(db, "anon") as conn, pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"SELECT * FROM {table}")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO photo_sets (id, user_id) VALUES (gen_random_uuid(), {me})",
        "UPDATE photo_sets SET name = 'x' WHERE id = {my_set}",
        "DELETE FROM photo_sets WHERE id = {my_set}",
        "UPDATE training_photos SET accepted = true, reasons = '{{}}' WHERE set_id = {my_set}",
        "DELETE FROM training_photos WHERE set_id = {my_set}",
    ],
)
def test_a_user_cannot_write_sets_or_photos_directly(db: Conn, statement: str) -> None:
    """The API counts and checks every photo; a client writing rows would skip that."""
    me = new_user(db)
    my_set, _ = add_set_with_photo(db, me)
    sql = statement.format(me=f"'{me}'", my_set=f"'{my_set}'")
    with acting_as(db, "authenticated", me) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(sql)


def test_a_verdict_with_reasons_cannot_be_accepted(db: Conn) -> None:
    me = new_user(db)
    _, photo_id = add_set_with_photo(db, me)
    with pytest.raises(errors.CheckViolation):
        db.execute("UPDATE training_photos SET accepted = true WHERE id = %s", (photo_id,))
