"""The trained models' table (migration 0110) as Supabase's API roles see them: a user
reads only their own models and writes none (the API checks ownership, deletes the
files with the row, and keeps the photo set a model was trained from); anon sees
nothing. The database refuses what the API never writes."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg import errors

from tests.integration.test_supabase_schema import acting_as, db, new_user
from tests.integration.test_training_photos_schema import add_set_with_photo

pytestmark = pytest.mark.postgres
__all__ = ["db"]  # the fixture, used by name

Conn = psycopg.Connection[tuple[object, ...]]


def add_model(conn: Conn, user_id: uuid.UUID, **values: object) -> uuid.UUID:
    model_id = uuid.uuid4()
    row: dict[str, object] = {
        "id": model_id,
        "user_id": user_id,
        "name": "Me",
        "trigger_word": "ohwx",
        "base_model": "flux-schnell",
        "weights_key": f"{user_id}/models/{model_id}.safetensors",
        "weights_bytes": 1024,
        "status": "ready",
    } | values
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO trained_models ({columns}) VALUES ({marks})", tuple(row.values()))
    return model_id


def test_a_user_reads_only_their_own_models(db: Conn) -> None:
    me, stranger = new_user(db), new_user(db)
    mine = add_model(db, me)
    add_model(db, stranger)
    with acting_as(db, "authenticated", me) as conn:
        assert conn.execute("SELECT id FROM trained_models").fetchall() == [(mine,)]


def test_anon_sees_no_models(db: Conn) -> None:
    add_model(db, new_user(db))
    with acting_as(db, "anon") as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute("SELECT * FROM trained_models")


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO trained_models (id, user_id, name, trigger_word, base_model, weights_key,"
        " weights_bytes, status) VALUES (gen_random_uuid(), {me}, 'x', 'ohwx', 'flux-schnell',"
        " 'k', 1, 'ready')",
        "UPDATE trained_models SET name = 'x' WHERE id = {mine}",
        "UPDATE trained_models SET weights_key = 'someone-else' WHERE id = {mine}",
        "DELETE FROM trained_models WHERE id = {mine}",
    ],
)
def test_a_user_cannot_write_models_directly(db: Conn, statement: str) -> None:
    me = new_user(db)
    mine = add_model(db, me)
    sql = statement.format(me=f"'{me}'", mine=f"'{mine}'")
    with acting_as(db, "authenticated", me) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(sql)


def test_a_set_kept_by_a_model_cannot_be_deleted_under_it(db: Conn) -> None:
    me = new_user(db)
    set_id, _ = add_set_with_photo(db, me)
    add_model(db, me, photo_set_id=set_id)
    with pytest.raises(errors.ForeignKeyViolation):
        db.execute("DELETE FROM photo_sets WHERE id = %s", (set_id,))


@pytest.mark.parametrize(
    "values",
    [{"trigger_word": "two words"}, {"name": ""}, {"status": "training"}, {"weights_bytes": 0}],
)
def test_the_table_refuses_what_the_api_never_writes(db: Conn, values: dict[str, object]) -> None:
    with pytest.raises(errors.CheckViolation):
        add_model(db, new_user(db), **values)


def test_deleting_a_user_deletes_their_models_and_sets_together(db: Conn) -> None:
    me = new_user(db)
    set_id, _ = add_set_with_photo(db, me)
    add_model(db, me, photo_set_id=set_id)
    db.execute("DELETE FROM profiles WHERE id = %s", (me,))
    assert db.execute(
        "SELECT count(*) FROM trained_models WHERE user_id = %s", (me,)
    ).fetchone() == (0,)
