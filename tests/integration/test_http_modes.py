"""Edit and video over HTTP, in-process on the real Postgres with the memory GPU:
multipart uploads, their validation, and nothing left behind when a request fails.
(The real renderer's pixels and MP4s are checked end to end in tests/e2e.)"""

from __future__ import annotations

import asyncio
import functools
import io
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pillow_heif
import psycopg
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image, ImageDraw

from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.supabase.auth import mint_token
from genstudio.core.model.media import mp4_info
from genstudio.core.services.credits import grant_credits
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)

SECRET = "integration-secret-" + "m" * 32
PROBLEM = "application/problem+json"

pillow_heif.register_heif_opener()


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def picture(width: int = 160, height: int = 120) -> Image.Image:
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    ImageDraw.Draw(image).ellipse((10, 10, 90, 70), fill=(220, 40, 70))
    return image


def mask_of(
    width: int = 160, height: int = 120, box: tuple[int, int, int, int] | None = None
) -> bytes:
    mask = Image.new("L", (width, height), 0)
    if box is not None:
        ImageDraw.Draw(mask).rectangle(box, fill=255)
    return encode(mask)


def multipart(
    fields: dict[str, str], files: dict[str, tuple[str, bytes, str | None]] | None = None
) -> tuple[bytes, str]:
    """A form as the app sends it; a file given no content type goes without a
    Content-Type line (as React Native's FormData sends a file without ``type``)."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, data, content_type) in (files or {}).items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        parts.append(head.encode() + b"\r\n" + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


BOX = (40, 30, 99, 79)
PNG = encode(picture())
MASK = mask_of(box=BOX)


class Api:
    def __init__(
        self, client: AsyncTestClient[Litestar], pg_url: str, media: Path, gpu: InMemoryGpuProvider
    ) -> None:
        self.gpu = gpu
        self.client = client
        self.pg_url = pg_url
        self.media = media

    def headers(self, user: uuid.UUID, key: str | None = None) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {mint_token(SECRET, user_id=user)}",
            "Idempotency-Key": key or str(uuid.uuid4()),
        }

    async def grant(self, user: uuid.UUID, amount: int) -> None:
        c = self.client.app.state.runtime.container
        # on the app's own event loop (the test client's portal): the database adapter's
        # pool and locks belong to it
        self.client.blocking_portal.call(
            functools.partial(
                grant_credits,
                c.uow_factory(),
                user_id=user,
                amount=amount,
                reference="test",
                idempotency_key=str(uuid.uuid4()),
                now=c.clock().now(),
            )
        )

    async def edit(
        self,
        user: uuid.UUID,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        key: str | None = None,
        **fields: str,
    ) -> httpx.Response:
        data = {"model": "sdxl-inpaint", "prompt": "a straw hat"} | fields
        if files is None:
            files = {
                "image": ("photo.png", PNG, "image/png"),
                "mask": ("mask.png", MASK, "image/png"),
            }
        return await self.client.post(
            "/v1/generate/edit", data=data, files=files, headers=self.headers(user, key)
        )

    async def video(
        self,
        user: uuid.UUID,
        *,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        key: str | None = None,
        **fields: str,
    ) -> httpx.Response:
        data = {
            "model": "wan-2.1",
            "prompt": "a lighthouse in a storm",
            "durationSeconds": "1",
            "fps": "8",
        } | fields
        if not files:  # httpx would send a field-only form urlencoded: the app sends multipart
            body, content_type = multipart(data)
            headers = self.headers(user, key) | {"Content-Type": content_type}
            return await self.client.post("/v1/generate/video", content=body, headers=headers)
        return await self.client.post(
            "/v1/generate/video", data=data, files=files, headers=self.headers(user, key)
        )

    async def wait(self, user: uuid.UUID, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            response = await self.client.get(f"/v1/generate/{job_id}", headers=self.headers(user))
            body: dict[str, Any] = response.json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(body)

    async def download(self, url: str) -> bytes:
        path = "/" + url.split("/", 3)[3]  # the signed URL, served by this app
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        return response.content

    def count(self, sql: str, *args: object) -> int:
        with psycopg.connect(self.pg_url) as conn:
            row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])

    def files_of(self, user: uuid.UUID) -> list[Path]:
        root = self.media / str(user)
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    async def credits(self, user: uuid.UUID) -> int:
        me = await self.client.get("/v1/me", headers=self.headers(user))
        return int(me.json()["credits"])

    def nothing_left(self, user: uuid.UUID) -> None:
        assert self.files_of(user) == []
        assert self.count("SELECT count(*) FROM images WHERE user_id = %s", user) == 0
        assert self.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 0
        assert self.count("SELECT count(*) FROM idempotency_records WHERE user_id = %s", user) == 0


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(poll_interval=0.02, worker_concurrency=2),
    )
    gpu = InMemoryGpuProvider("fake", steps=1)

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield Api(client, pg_url, tmp_path / "media", gpu)


async def test_an_iphone_heic_edit_repaints_only_the_masked_pixels(api: Api) -> None:
    user = uuid.uuid4()
    await api.grant(user, 3)
    heic = encode(picture(), "HEIF")
    assert heic[4:12] == b"ftypheic"

    created = await api.edit(
        user,
        files={
            "image": ("IMG_0001.HEIC", heic, "image/heic"),
            "mask": ("m.png", MASK, "image/png"),
        },
        seed="7",
        strength="0.6",
        negativePrompt="blurry",
    )

    assert created.status_code == 202, created.text
    job = created.json()
    assert job["kind"] == "edit" and job["cost"] == 1
    assert job["params"] == {
        "prompt": "a straw hat",
        "negativePrompt": "blurry",
        "width": 160,
        "height": 120,
        "seed": 7,
        "strength": 0.6,
    }
    assert api.count("SELECT count(*) FROM images WHERE user_id = %s AND job_id IS NULL", user) == 2
    uploads = [p for p in api.files_of(user) if p.parent.name == "uploads"]
    assert len(uploads) == 2 and all(p.suffix == ".png" for p in uploads)
    done = await api.wait(user, job["id"])
    assert done["status"] == "succeeded", done
    [asset] = done["assets"]
    assert set(asset) == {
        "id",
        "kind",
        "contentType",
        "width",
        "height",
        "byteSize",
        "url",
        "urlExpiresAt",
    }
    result = Image.open(io.BytesIO(await api.download(asset["url"])))
    assert result.format == "PNG" and result.size == (160, 120)
    # the provider was handed both uploads, as PNGs the app serves through signed URLs
    # (this job's request: the session's database may hold another test's due job,
    # which this app's in-process worker takes too)
    [request] = [r for r in api.gpu.submitted if str(r.job_id) == job["id"]]
    assert [i.name for i in request.inputs] == ["image", "mask"]
    for given in request.inputs:
        assert Image.open(io.BytesIO(await api.download(given.url))).size == (160, 120)
    assert await api.credits(user) == 2


@pytest.mark.parametrize("input_type", ["text", "image", "keyframes"])
async def test_a_video_of_each_input_type_is_an_mp4_with_a_poster(
    api: Api, input_type: str
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 10)
    files = {
        "text": {},
        "image": {"image": ("a.jpg", encode(picture(), "JPEG"), "image/jpeg")},
        "keyframes": {
            "firstFrame": ("a.png", PNG, "image/png"),
            "lastFrame": ("b.webp", encode(picture(200, 100), "WEBP"), "image/webp"),
        },
    }[input_type]

    created = await api.video(user, files=files, inputType=input_type, durationSeconds="2")

    assert created.status_code == 202, created.text
    job = created.json()
    assert job["kind"] == "video" and job["cost"] == 10
    assert job["params"] == {
        "inputType": input_type,
        "prompt": "a lighthouse in a storm",
        "negativePrompt": "",
        "durationSeconds": 2,
        "resolution": "480p",
        "width": 854,
        "height": 480,
        "fps": 8,
        "seed": None,
    }
    done = await api.wait(user, job["id"])
    assert done["status"] == "succeeded", done
    [asset] = done["assets"]
    assert asset["kind"] == "video" and asset["contentType"] == "video/mp4"
    assert asset["durationSeconds"] == 2.0 and (asset["width"], asset["height"]) == (854, 480)
    info = mp4_info(await api.download(asset["url"]))
    assert info is not None and (info.duration_seconds, info.frames) == (2.0, 16)
    [request] = [r for r in api.gpu.submitted if str(r.job_id) == job["id"]]
    assert sorted(i.name for i in request.inputs) == sorted(
        {"text": [], "image": ["image"], "keyframes": ["first_frame", "last_frame"]}[input_type]
    )
    poster = Image.open(io.BytesIO(await api.download(asset["thumbnailUrl"])))
    assert poster.format == "PNG" and poster.size == (854, 480)
    assert (
        api.count(
            "SELECT count(*) FROM videos WHERE user_id = %s AND thumbnail_key IS NOT NULL", user
        )
        == 1
    )


def broken(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("route", "files", "fields", "field"),
    [
        ("edit", {"image": ("a.png", PNG, "image/png")}, {}, "mask"),
        ("edit", {"mask": ("m.png", MASK, "image/png")}, {}, "image"),
        (
            "edit",
            {"image": ("a.png", broken(PNG), "image/png"), "mask": ("m.png", MASK, "image/png")},
            {},
            "image",
        ),
        (
            "edit",
            {"image": ("a.gif", PNG, "image/gif"), "mask": ("m.png", MASK, "image/png")},
            {},
            "image",
        ),
        (
            "edit",
            {
                "image": ("a.txt", b"hello, world" * 20, "text/plain"),
                "mask": ("m.png", MASK, "image/png"),
            },
            {},
            "image",
        ),
        (
            "edit",
            {
                "image": ("a.png", encode(picture(40, 40)), "image/png"),
                "mask": ("m.png", MASK, "image/png"),
            },
            {},
            "image",
        ),
        (
            "edit",
            {
                "image": ("a.png", PNG, "image/png"),
                "mask": ("m.png", mask_of(100, 100, BOX), "image/png"),
            },
            {},
            "mask",
        ),
        (
            "edit",
            {"image": ("a.png", PNG, "image/png"), "mask": ("m.png", mask_of(), "image/png")},
            {},
            "mask",
        ),
        ("edit", None, {"strength": "strong"}, "strength"),
        ("edit", None, {"seed": "-4"}, "seed"),
        ("edit", None, {"prompt": " "}, "prompt"),
        ("edit", None, {"prompt": "a hat\x00"}, "prompt"),
        ("edit", None, {"negativePrompt": "x" * 2001}, "negativePrompt"),
        ("edit", None, {"model": "wan-2.1"}, "model"),
        ("edit", None, {"colour": "red"}, "colour"),
        ("video", {}, {"inputType": "image"}, "image"),
        (
            "video",
            {"firstFrame": ("a.png", PNG, "image/png")},
            {"inputType": "keyframes"},
            "lastFrame",
        ),
        (
            "video",
            {
                "firstFrame": ("a.png", PNG, "image/png"),
                "lastFrame": ("b.png", broken(PNG), "image/png"),
            },
            {"inputType": "keyframes"},
            "lastFrame",
        ),
        ("video", {"image": ("a.png", PNG, "image/png")}, {"inputType": "text"}, "image"),
        ("video", {}, {"inputType": "gif"}, "inputType"),
        ("video", {}, {"durationSeconds": "long"}, "durationSeconds"),
        ("video", {}, {"durationSeconds": "11"}, "durationSeconds"),
        ("video", {}, {"fps": "60"}, "fps"),
        ("video", {}, {"resolution": "4k"}, "resolution"),
        (
            "video",
            {"image": ("a.png", PNG, "image/png")},
            {"inputType": "image", "prompt": ""},
            "prompt",
        ),
    ],
)
async def test_a_bad_upload_or_field_is_a_422_naming_it_and_leaves_nothing(
    api: Api,
    route: str,
    files: dict[str, tuple[str, bytes, str]] | None,
    fields: dict[str, str],
    field: str,
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 50)
    send = api.edit if route == "edit" else api.video

    response = await send(user, files=files, **fields)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == field, response.json()
    api.nothing_left(user)
    assert await api.credits(user) == 50


async def test_an_edit_the_user_cannot_afford_is_a_402_and_deletes_its_uploads(api: Api) -> None:
    user = uuid.uuid4()
    # enough for the cheapest edit (without it, 402 before the body is read) but not
    # for this picture's size
    await api.grant(user, 1)
    big = encode(picture(1024, 1024))
    response = await api.edit(
        user,
        files={
            "image": ("a.png", big, "image/png"),
            "mask": ("m.png", mask_of(1024, 1024, BOX), "image/png"),
        },
    )
    assert response.status_code == 402, response.text
    assert (response.json()["required"], response.json()["available"]) == (2, 1)
    api.nothing_left(user)


async def test_a_keyframes_video_the_user_cannot_afford_deletes_both_frames(api: Api) -> None:
    user = uuid.uuid4()
    await api.grant(user, 4)
    response = await api.video(
        user,
        files={"firstFrame": ("a.png", PNG, "image/png"), "lastFrame": ("b.png", PNG, "image/png")},
        inputType="keyframes",
    )
    assert response.status_code == 402
    api.nothing_left(user)


async def test_an_idempotent_retry_replays_and_keeps_one_set_of_uploads(api: Api) -> None:
    user = uuid.uuid4()
    await api.grant(user, 5)
    key = str(uuid.uuid4())
    first = await api.edit(user, key=key)
    assert first.status_code == 202
    files_after_first = api.files_of(user)

    again = await api.edit(user, key=key)
    other = await api.edit(user, key=key, prompt="a different hat")

    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key"
    await api.wait(user, first.json()["id"])
    uploads = [p for p in api.files_of(user) if p.parent.name == "uploads"]
    assert sorted(uploads) == sorted(p for p in files_after_first if p.parent.name == "uploads")
    assert api.count("SELECT count(*) FROM images WHERE user_id = %s AND job_id IS NULL", user) == 2
    assert api.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 1


async def test_files_without_a_content_type_or_with_a_common_alias_are_judged_by_their_bytes(
    api: Api,
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 5)
    body, content_type = multipart(
        {"model": "sdxl-inpaint", "prompt": "a straw hat"},
        {
            "image": ("photo.jpg", encode(picture(), "JPEG"), "image/jpg"),
            "mask": ("mask", MASK, None),
        },
    )
    headers = api.headers(user, None) | {"Content-Type": content_type}
    response = await api.client.post("/v1/generate/edit", content=body, headers=headers)
    assert response.status_code == 202, response.text
    done = await api.wait(user, response.json()["id"])
    assert done["status"] == "succeeded", done


async def test_a_field_whose_text_spells_another_field_does_not_pass_for_it(api: Api) -> None:
    """The idempotency fingerprint of a form: a prompt ending in a line that reads like a
    second field is not the same request as one with that field."""
    user = uuid.uuid4()
    await api.grant(user, 50)
    key = str(uuid.uuid4())
    first = await api.video(user, files={}, key=key, prompt="a wave\nresolution=720p")
    assert first.status_code == 202, first.text
    other = await api.video(user, files={}, key=key, prompt="a wave", resolution="720p")
    assert other.status_code == 422 and other.json()["field"] == "Idempotency-Key", other.text
    assert api.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 1


async def test_media_is_served_by_byte_ranges_and_to_head_requests(api: Api) -> None:
    """What a video player needs of the local media endpoint: ranges (206), HEAD, 416
    past the end; and a link without its signature is a 403, like a forged one."""
    user = uuid.uuid4()
    await api.grant(user, 10)
    created = await api.video(user, files={}, durationSeconds="1")
    assert created.status_code == 202, created.text
    done = await api.wait(user, created.json()["id"])
    [asset] = done["assets"]
    path = "/" + str(asset["url"]).split("/", 3)[3]
    whole = await api.download(str(asset["url"]))

    first = await api.client.get(path, headers={"Range": "bytes=0-1"})
    assert first.status_code == 206 and first.content == whole[:2]
    assert first.headers["content-range"] == f"bytes 0-1/{len(whole)}"
    assert first.headers["content-type"] == "video/mp4"
    tail = await api.client.get(path, headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == whole[-100:]
    rest = await api.client.get(path, headers={"Range": "bytes=100-"})
    assert rest.status_code == 206 and rest.content == whole[100:]
    past = await api.client.get(path, headers={"Range": f"bytes={len(whole)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(whole)}"

    head = await api.client.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(whole))
    assert head.headers["accept-ranges"] == "bytes"

    unsigned = path.split("?")[0]
    for query in ("", "?expires=abc&sig=x", "?sig=abc"):
        response = await api.client.get(unsigned + query)
        assert response.status_code == 403, (query, response.text)


async def test_the_upload_endpoints_are_in_the_openapi_schema(api: Api) -> None:
    schema = (await api.client.get("/schema/openapi.json")).json()
    for path in ("/v1/generate/edit", "/v1/generate/video"):
        body = schema["paths"][path]["post"]["requestBody"]["content"]
        assert "multipart/form-data" in body
