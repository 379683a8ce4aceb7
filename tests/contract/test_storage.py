"""The MediaStorage contract (genstudio.testing.contracts.storage, the suite outside
adapters run too) over every local adapter; then the signed URLs of local files."""

from __future__ import annotations

import hashlib
import hmac
import os
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from genstudio.adapters.local_storage import LocalFileStorage
from genstudio.adapters.memory import InMemoryStorage
from genstudio.core.model.media import storage_key
from genstudio.ports.storage import MediaStorage, ObjectNotFound
from genstudio.testing.contracts.storage import MediaStorageContract, StorageFactory, a_key

SECRET = b"test-secret"
BASE_URL = "http://127.0.0.1:8000"


class TestInMemoryStorage(MediaStorageContract):
    @pytest.fixture
    def storage_factory(self) -> StorageFactory:
        return InMemoryStorage


class TestLocalFileStorage(MediaStorageContract):
    @pytest.fixture
    def storage_factory(self, tmp_path: Path) -> StorageFactory:
        return lambda: LocalFileStorage(tmp_path / "media", base_url=BASE_URL, secret=SECRET)


@pytest.fixture(params=["memory", "local"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> MediaStorage:
    if request.param == "memory":
        return InMemoryStorage()
    return LocalFileStorage(tmp_path / "media", base_url=BASE_URL, secret=SECRET)


@pytest.fixture
def local(tmp_path: Path) -> LocalFileStorage:
    return LocalFileStorage(tmp_path / "media", base_url=BASE_URL + "/", secret=SECRET)


# -- the signed URLs of the local adapters ------------------------------------------------


async def test_a_signed_url_names_the_object_and_its_expiry(storage: MediaStorage) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    before = int(time.time())

    url = await storage.signed_url(key, 300)

    parsed = urllib.parse.urlsplit(url)
    assert urllib.parse.unquote(parsed.path).endswith(key)
    expires = int(urllib.parse.parse_qs(parsed.query)["expires"][0])
    assert before + 300 <= expires <= int(time.time()) + 300


# -- local files --------------------------------------------------------------------------


def parse(url: str) -> tuple[str, int, str]:
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parsed.query)
    key = urllib.parse.unquote(parsed.path.removeprefix("/media/"))
    return key, int(query["expires"][0]), query["sig"][0]


async def test_local_signed_url_has_the_documented_shape(local: LocalFileStorage) -> None:
    key = a_key()
    await local.put(key, b"data", "image/png")

    url = await local.signed_url(key, 60)

    assert url.startswith(f"{BASE_URL}/media/{key}?expires=")
    _, expires, sig = parse(url)
    assert url.endswith(f"?expires={expires}&sig={sig}")
    assert sig == hmac.new(SECRET, f"{key}\n{expires}".encode(), hashlib.sha256).hexdigest()


async def test_local_verify_accepts_a_fresh_signature(local: LocalFileStorage) -> None:
    key = a_key()
    await local.put(key, b"data", "image/png")
    url_key, expires, sig = parse(await local.signed_url(key, 60))

    assert url_key == key
    assert local.verify(url_key, expires, sig)
    assert local.path_for(url_key).read_bytes() == b"data"


async def test_local_verify_rejects_tampering_and_expiry(local: LocalFileStorage) -> None:
    key = a_key()
    await local.put(key, b"data", "image/png")
    _, expires, sig = parse(await local.signed_url(key, 60))
    other = a_key()

    assert not local.verify(other, expires, sig)
    assert not local.verify(key, expires + 3600, sig)
    assert not local.verify(key, expires, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
    assert not local.verify(key, expires, sig.upper())
    assert not local.verify(key, expires, "")
    assert not local.verify(key, expires, "é" * 64)
    assert not local.verify(key, expires, sig, now=expires + 1)
    assert not local.verify("../" + key, expires, sig)
    assert local.verify(key, expires, sig, now=expires - 1)


async def test_local_a_signature_from_another_secret_is_rejected(
    local: LocalFileStorage, tmp_path: Path
) -> None:
    key = a_key()
    await local.put(key, b"data", "image/png")
    impostor = LocalFileStorage(tmp_path / "media", base_url=BASE_URL, secret=b"other")
    _, expires, sig = parse(await impostor.signed_url(key, 60))

    assert not local.verify(key, expires, sig)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../escape.png",
        "user/../../escape.png",
        "user/./x.png",
        "/etc/passwd",
        "user//x.png",
        "user/",
        "user\\..\\x.png",
        "user/.hidden",
        "user/x.png\x00",
        "C:/x.png",
    ],
)
async def test_local_keys_that_could_escape_the_root_are_refused(
    local: LocalFileStorage, key: str
) -> None:
    with pytest.raises(ValueError):
        local.path_for(key)
    with pytest.raises(ValueError):
        await local.put(key, b"data", "image/png")
    with pytest.raises(ValueError):
        await local.get(key)
    with pytest.raises(ValueError):
        await local.delete(key)
    assert not (local.root.parent / "escape.png").exists()


async def test_local_objects_are_files_under_the_root(local: LocalFileStorage) -> None:
    user, media = uuid.uuid4(), uuid.uuid4()
    key = storage_key(user, media, "png")
    await local.put(key, b"data", "image/png")

    assert local.path_for(key) == local.root / str(user) / f"{media}.png"
    assert sorted(p.name for p in (local.root / str(user)).iterdir()) == [f"{media}.png"]


@pytest.mark.parametrize(
    ("extension", "content_type"),
    [
        ("png", "image/png"),
        ("mp4", "video/mp4"),
        ("jpg", "image/jpeg"),
        ("webp", "image/webp"),
        ("bin", "application/octet-stream"),
    ],
)
async def test_local_content_type_comes_from_the_extension(
    local: LocalFileStorage, extension: str, content_type: str
) -> None:
    key = a_key(extension)
    await local.put(key, b"data", content_type)
    assert local.content_type_for(key) == content_type


async def test_local_a_content_type_the_extension_would_not_give_is_kept(
    local: LocalFileStorage,
) -> None:
    key = a_key("dat")
    await local.put(key, b"data", "image/avif")
    assert local.content_type_for(key) == "image/avif"

    await local.put(key, b"data", "application/octet-stream")
    assert local.content_type_for(key) == "application/octet-stream"

    await local.put(key, b"data", "image/avif")
    await local.delete(key)
    assert list(local.path_for(key).parent.iterdir()) == []


async def test_local_a_failed_write_leaves_the_old_object_and_no_temp_file(
    local: LocalFileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = a_key()
    await local.put(key, b"old", "image/png")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk pulled out")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk pulled out"):
        await local.put(key, b"new", "image/png")
    monkeypatch.undo()

    assert await local.get(key) == b"old"
    assert [p.name for p in local.path_for(key).parent.iterdir()] == [local.path_for(key).name]


async def test_local_a_key_prefix_is_not_an_object(local: LocalFileStorage) -> None:
    user = uuid.uuid4()
    await local.put(f"{user}/x.png", b"data", "image/png")

    with pytest.raises(ObjectNotFound):
        await local.get(str(user))
    with pytest.raises(ObjectNotFound):
        await local.signed_url(str(user), 60)
    await local.delete(str(user))
    assert await local.get(f"{user}/x.png") == b"data"
