"""The ``MediaStorage`` contract (``genstudio.ports.storage``), for any storage adapter.

Subclass ``MediaStorageContract`` and override ``storage_factory``: a fixture returning
a function that makes a ready adapter (its bucket created, pointed at your local
server). The adapter is closed after each check if it has an ``aclose``::

    class TestS3Storage(MediaStorageContract):
        @pytest.fixture
        def storage_factory(self, s3_server):
            return lambda: S3Storage(endpoint_url=s3_server.url, bucket="media")

Keys are ``<user_id>/<media_id>.<ext>`` (``genstudio.core.model.media.storage_key``).
What a signed URL looks like is each adapter's own (check its expiry in your own
tests); the contract checks that it is an absolute URL that names the object.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from genstudio.core.model.media import storage_key
from genstudio.ports.storage import MediaStorage, ObjectNotFound

StorageFactory = Callable[[], MediaStorage | Awaitable[MediaStorage]]


def a_key(extension: str = "png") -> str:
    """A fresh key of the documented shape."""
    return storage_key(uuid.uuid4(), uuid.uuid4(), extension)


@pytest.mark.asyncio
class MediaStorageContract:
    """What genstudio relies on from every media storage."""

    @pytest.fixture
    def storage_factory(self) -> StorageFactory:
        """Override: a function making the storage under test."""
        pytest.fail(f"{type(self).__name__} must override the storage_factory fixture")

    @pytest_asyncio.fixture
    async def storage(self, storage_factory: StorageFactory) -> AsyncIterator[MediaStorage]:
        made = storage_factory()
        storage = await made if isinstance(made, Awaitable) else made
        yield storage
        close = getattr(storage, "aclose", None)
        if close is not None:
            await close()

    async def test_what_is_put_is_got_back(self, storage: MediaStorage) -> None:
        key = a_key()
        await storage.put(key, b"\x89PNG first", "image/png")
        assert await storage.get(key) == b"\x89PNG first"

    async def test_putting_again_overwrites(self, storage: MediaStorage) -> None:
        key = a_key()
        await storage.put(key, b"old", "image/png")
        await storage.put(key, b"new and longer", "image/png")
        assert await storage.get(key) == b"new and longer"

    @pytest.mark.parametrize(
        ("extension", "content_type"),
        [("png", "image/png"), ("jpg", "image/jpeg"), ("mp4", "video/mp4"), ("webp", "image/webp")],
    )
    async def test_every_kind_of_media_is_kept_byte_for_byte(
        self, storage: MediaStorage, extension: str, content_type: str
    ) -> None:
        key = a_key(extension)
        data = bytes(range(256)) * 64  # every byte value, 16 KiB
        await storage.put(key, data, content_type)
        assert await storage.get(key) == data

    async def test_getting_a_missing_object_raises_object_not_found(
        self, storage: MediaStorage
    ) -> None:
        with pytest.raises(ObjectNotFound):
            await storage.get(a_key())

    async def test_a_deleted_object_is_gone_and_deleting_it_again_is_fine(
        self, storage: MediaStorage
    ) -> None:
        key = a_key()
        await storage.put(key, b"data", "image/png")
        await storage.delete(key)
        await storage.delete(key)
        await storage.delete(a_key())
        with pytest.raises(ObjectNotFound):
            await storage.get(key)

    async def test_a_signed_url_is_an_absolute_url_naming_the_object(
        self, storage: MediaStorage
    ) -> None:
        key = a_key()
        await storage.put(key, b"data", "image/png")

        url = await storage.signed_url(key, 300)

        parsed = urllib.parse.urlsplit(url)
        assert parsed.scheme and parsed.netloc, url
        assert key in urllib.parse.unquote(parsed.path), url

    async def test_signed_urls_of_two_objects_differ(self, storage: MediaStorage) -> None:
        first, second = a_key(), a_key()
        await storage.put(first, b"one", "image/png")
        await storage.put(second, b"two", "image/png")
        assert await storage.signed_url(first, 300) != await storage.signed_url(second, 300)

    async def test_signing_a_url_for_a_missing_object_raises_object_not_found(
        self, storage: MediaStorage
    ) -> None:
        with pytest.raises(ObjectNotFound):
            await storage.signed_url(a_key(), 300)

    async def test_other_objects_are_left_alone(self, storage: MediaStorage) -> None:
        keep, drop = a_key(), a_key()
        await storage.put(keep, b"keep", "image/png")
        await storage.put(drop, b"drop", "image/png")
        await storage.delete(drop)
        assert await storage.get(keep) == b"keep"
