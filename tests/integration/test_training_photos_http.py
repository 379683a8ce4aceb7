"""Photo sets over HTTP on the real Postgres, with the real analyser: a user uploads
twelve photos (some bad on purpose), reads each verdict, deletes; nobody else sees
them; bad input is a problem naming the field; nothing is left behind."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageOps

from tests.contract import photos as p
from tests.integration.test_http_api import PROBLEM, Harness, api

pytestmark = pytest.mark.postgres
__all__ = ["api"]  # the fixture, used by name


def twelve_photos() -> list[tuple[str, bytes, set[str]]]:
    """(name, bytes, expected reasons): four usable shots of one face, eight bad ones."""
    face = p.astronaut()
    mirrored = ImageOps.mirror(face)
    closer = face.crop((100, 0, 868, 768))  # not enlarged: still sharp
    return [
        ("face", p.jpeg(face), set()),
        ("mirrored", p.jpeg(mirrored), set()),
        ("closer", p.encoded(closer, "WEBP", quality=92), set()),
        ("closer-mirrored", p.encoded(ImageOps.mirror(closer), "PNG"), set()),
        ("cat", p.jpeg(p.cat()), {"no_face"}),
        # made from the first photo: also near copies of it, and every reason is listed
        ("blurred", p.jpeg(p.blurred(face)), {"blurry", "duplicate"}),
        ("dark", p.jpeg(p.darkened(face)), {"too_dark", "duplicate"}),
        ("small", p.jpeg(p.shrunk(face)), {"too_small", "duplicate"}),
        ("two", p.jpeg(p.two_faces(face)), {"several_faces"}),
        ("again", p.encoded(face.resize((900, 900)), "PNG"), {"duplicate"}),
        ("corrupt", p.jpeg(face)[:3000], {"unreadable"}),
        ("gif", p.encoded(face, "GIF"), {"unsupported_format"}),
    ]


async def upload(api: Harness, user: uuid.UUID, set_id: str, data: bytes) -> httpx.Response:
    return await api.client.post(
        f"/v1/training/photo-sets/{set_id}/photos",
        files={"photo": ("photo", data, "application/octet-stream")},
        headers=api.headers(user),
    )


async def new_set(api: Harness, user: uuid.UUID, **body: object) -> dict[str, object]:
    response = await api.client.post(
        "/v1/training/photo-sets", json=body, headers=api.headers(user)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def test_twelve_photos_get_their_verdicts_and_only_their_owner_sees_them(
    api: Harness, tmp_path: Path
) -> None:
    me, stranger = uuid.uuid4(), uuid.uuid4()
    created = await new_set(api, me, name="  Me, summer  ")
    set_id = str(created["id"])
    assert (created["name"], created["photoCount"], created["ready"]) == ("Me, summer", 0, False)

    expected: dict[str, set[str]] = {}
    for name, data, reasons in twelve_photos():
        response = await upload(api, me, set_id, data)
        assert response.status_code == 201, (name, response.text)
        photo = response.json()
        assert set(photo["reasons"]) == reasons, (name, photo)
        assert photo["accepted"] is (not reasons)
        expected[photo["id"]] = reasons

    body = (
        await api.client.get(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    ).json()
    assert (body["photoCount"], body["acceptedCount"], body["maxPhotos"]) == (12, 4, 30)
    assert {ph["id"]: set(ph["reasons"]) for ph in body["photos"]} == expected
    for photo in body["photos"]:
        if "unreadable" in photo["reasons"] or "unsupported_format" in photo["reasons"]:
            assert photo["url"] is None and photo["checks"] is None
        else:
            assert photo["url"] and 0 <= photo["score"] <= 100
    stored = await api.client.get(body["photos"][0]["url"])
    assert stored.status_code == 200 and stored.content.startswith(b"\xff\xd8\xff")
    assert Image.open(__import__("io").BytesIO(stored.content)).size == (1024, 1024)

    listed = (await api.client.get("/v1/training/photo-sets", headers=api.headers(me))).json()
    assert [(s["id"], s["photoCount"], s["acceptedCount"]) for s in listed["items"]] == [
        (set_id, 12, 4)
    ]

    # another user: the set and its photos do not exist for them
    doomed = body["photos"][4]["id"]
    theirs = api.headers(stranger)
    for response in (
        await api.client.get(f"/v1/training/photo-sets/{set_id}", headers=theirs),
        await upload(api, stranger, set_id, p.jpeg(p.astronaut())),
        await api.client.delete(
            f"/v1/training/photo-sets/{set_id}/photos/{doomed}", headers=theirs
        ),
        await api.client.delete(f"/v1/training/photo-sets/{set_id}", headers=theirs),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"].startswith(PROBLEM)
    assert (await api.client.get("/v1/training/photo-sets", headers=theirs)).json() == {"items": []}

    gone = await api.client.delete(
        f"/v1/training/photo-sets/{set_id}/photos/{doomed}", headers=api.headers(me)
    )
    assert gone.status_code == 204
    after = (
        await api.client.get(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    ).json()
    assert after["photoCount"] == 11 and doomed not in {ph["id"] for ph in after["photos"]}

    # the set goes with every file; no upload is left expected
    files = [f for f in (tmp_path / "media").rglob("*.jpg") if "training" in f.parts]
    assert len(files) == 9  # the twelve, less two unreadable, less the deleted one
    deleted = await api.client.delete(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    assert deleted.status_code == 204
    assert [f for f in (tmp_path / "media").rglob("*.jpg") if "training" in f.parts] == []
    assert api.count("SELECT count(*) FROM upload_intents") == 0
    assert api.count("SELECT count(*) FROM training_photos") == 0
    missing = await api.client.get(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("files", "data", "field"),
    [
        ({"photo": (None, b"not a file")}, {}, "photo"),  # a text part, not a file
        ({"picture": ("p", b"x", "image/jpeg")}, {}, "picture"),
        ({"photo": ("p", b"", "image/jpeg")}, {}, "photo"),
        ({"photo": ("p", b"x", "image/jpeg")}, {"caption": "hi"}, "caption"),
    ],
    ids=["text-not-file", "unknown-file", "empty-file", "unknown-text"],
)
async def test_a_bad_upload_is_a_problem_naming_the_field(
    api: Harness, files: dict[str, Any], data: dict[str, str], field: str
) -> None:
    me = uuid.uuid4()
    set_id = (await new_set(api, me))["id"]
    response = await api.client.post(
        f"/v1/training/photo-sets/{set_id}/photos",
        files=files,
        data=data,
        headers=api.headers(me),
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == field
    assert api.count("SELECT count(*) FROM training_photos") == 0


async def test_a_bad_set_name_or_field_is_a_problem_naming_it(api: Harness) -> None:
    me = uuid.uuid4()
    for body, field in (({"name": "x" * 101}, "name"), ({"title": "x"}, "title")):
        response = await api.client.post(
            "/v1/training/photo-sets", json=body, headers=api.headers(me)
        )
        assert response.status_code in (400, 422), response.text
        assert response.json()["field"] == field
    assert api.count("SELECT count(*) FROM photo_sets") == 0
