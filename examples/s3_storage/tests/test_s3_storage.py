"""S3Storage against a local S3 server: moto's server mode on loopback, spoken to over
HTTP by boto3 exactly as AWS S3 would be (no mock of the client library), plus a
loopback stand-in answering S3's error documents for the failures moto does not act
out (throttling, refused credentials, a server that stalls).

genstudio's exported ``MediaStorageContract`` runs over it first: the same checks
genstudio's own storages pass.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from genstudio.core.model.media import storage_key
from genstudio.ports.storage import ObjectNotFound, StorageUnavailable
from genstudio.testing.contracts.storage import MediaStorageContract, StorageFactory
from genstudio.testing.standins.loopback import Fault, LoopbackStandIn, Reply, Request, Stall
from moto.server import ThreadedMotoServer

from genstudio_s3 import S3Storage

KEY_ID, SECRET = "test-key", "test-secret"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    """A local S3 (moto's server, in a thread of this process) on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


_admins: dict[str, Any] = {}


def new_bucket(url: str) -> str:
    """A private bucket of its own for one test, made over S3's API."""
    if url not in _admins:
        _admins[url] = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
    name = f"media-{uuid.uuid4().hex[:12]}"
    _admins[url].create_bucket(Bucket=name)
    return name


def storage_at(url: str, bucket: str, **options: Any) -> S3Storage:
    return S3Storage(
        bucket=bucket,
        endpoint_url=url,
        addressing_style="path",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        **options,
    )


class TestS3StorageContract(MediaStorageContract):
    @pytest.fixture
    def storage_factory(self, s3_url: str) -> StorageFactory:
        bucket = new_bucket(s3_url)
        return lambda: storage_at(s3_url, bucket)


@pytest.fixture
async def storage(s3_url: str) -> Any:
    made = storage_at(s3_url, new_bucket(s3_url))
    yield made
    await made.aclose()


async def test_a_presigned_get_url_serves_the_object_with_its_type_and_says_its_expiry(
    storage: S3Storage,
) -> None:
    key = storage_key(uuid.uuid4(), uuid.uuid4(), "webp")
    await storage.put(key, b"RIFF....WEBPVP8 ", "image/webp")

    url = await storage.signed_url(key, 900)

    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "900"
    assert query["X-Amz-Credential"].startswith("test-key/")
    async with httpx.AsyncClient() as http:
        served = await http.get(url)
        assert served.status_code == 200
        assert served.headers["content-type"] == "image/webp"
        assert served.content == b"RIFF....WEBPVP8 "
        # the bucket is private: the same address without its signature is refused
        assert (await http.get(url.split("?")[0])).status_code == 403


async def test_an_expiry_past_what_sigv4_allows_is_cut_to_seven_days(storage: S3Storage) -> None:
    key = storage_key(uuid.uuid4(), uuid.uuid4(), "png")
    await storage.put(key, b"png", "image/png")
    url = await storage.signed_url(key, 30 * 24 * 3600)
    assert "X-Amz-Expires=604800" in url
    with pytest.raises(ValueError, match="positive"):
        await storage.signed_url(key, 0)


async def test_a_presigned_put_url_stores_what_a_client_uploads_with_its_content_type(
    storage: S3Storage,
) -> None:
    key = storage_key(uuid.uuid4(), uuid.uuid4(), "mp4")

    url = await storage.signed_upload_url(key, "video/mp4", 600)

    assert "content-type" in dict(urllib.parse.parse_qsl(url.split("?")[1]))["X-Amz-SignedHeaders"]
    async with httpx.AsyncClient() as http:
        uploaded = await http.put(
            url, content=b"\x00\x00\x00 ftypisom", headers={"Content-Type": "video/mp4"}
        )
    assert uploaded.status_code == 200, uploaded.text
    assert await storage.get(key) == b"\x00\x00\x00 ftypisom"
    assert await storage.content_type(key) == "video/mp4"


async def test_urls_are_signed_for_the_public_endpoint_when_one_is_given(s3_url: str) -> None:
    bucket = new_bucket(s3_url)
    public = s3_url.replace("127.0.0.1", "localhost")  # another name for the same server
    storage = storage_at(s3_url, bucket, public_endpoint_url=public)
    try:
        key = storage_key(uuid.uuid4(), uuid.uuid4(), "png")
        await storage.put(key, b"public", "image/png")
        url = await storage.signed_url(key, 60)
        assert url.startswith(f"{public}/{bucket}/")
        async with httpx.AsyncClient() as http:
            assert (await http.get(url)).content == b"public"
    finally:
        await storage.aclose()


async def test_content_types_are_kept_as_given(storage: S3Storage) -> None:
    for extension, content_type in (
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("mp4", "video/mp4"),
    ):
        key = storage_key(uuid.uuid4(), uuid.uuid4(), extension)
        await storage.put(key, b"x", content_type)
        assert await storage.content_type(key) == content_type
    with pytest.raises(ObjectNotFound):
        await storage.content_type(storage_key(uuid.uuid4(), uuid.uuid4(), "png"))


@pytest.mark.parametrize("key", ["", "/abs.png", "a/../b.png", "u/.hidden", "C:/x.png"])
async def test_keys_outside_genstudio_s_shape_are_refused_before_any_call(
    storage: S3Storage, key: str
) -> None:
    with pytest.raises(ValueError):
        await storage.put(key, b"x", "image/png")


async def test_a_missing_bucket_is_the_service_failing_not_a_missing_object(s3_url: str) -> None:
    storage = storage_at(s3_url, "no-such-bucket")
    try:
        with pytest.raises(StorageUnavailable, match="'no-such-bucket' does not exist"):
            await storage.get(storage_key(uuid.uuid4(), uuid.uuid4(), "png"))
    finally:
        await storage.aclose()


# -- failures moto does not act out: S3's error documents from a loopback stand-in ---------


class FailingS3(LoopbackStandIn):
    """Answers every request as S3 does when it fails: an XML error document."""

    name = "failing-s3"

    def __init__(self, status: int, code: str) -> None:
        super().__init__()
        self.status, self.code = status, code

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Error><Code>{self.code}</Code><Message>stand-in says {self.code}</Message>"
            "<RequestId>4442587FB7D0A2F9</RequestId></Error>"
        )
        return Reply(self.status, body.encode(), "application/xml")


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (503, "SlowDown", "SlowDown"),
        (500, "InternalError", "InternalError"),
        (403, "InvalidAccessKeyId", "refused .*check S3_ACCESS_KEY_ID"),
        (403, "SignatureDoesNotMatch", "refused .*S3_SECRET_ACCESS_KEY"),
    ],
)
async def test_throttling_server_errors_and_refused_credentials_are_storage_unavailable(
    status: int, code: str, message: str
) -> None:
    with FailingS3(status, code) as failing:
        storage = storage_at(failing.url, "media", attempts=2)
        try:
            key = storage_key(uuid.uuid4(), uuid.uuid4(), "png")
            for call in (
                storage.put(key, b"x", "image/png"),
                storage.get(key),
                storage.delete(key),
            ):
                with pytest.raises(StorageUnavailable, match=message):
                    await call
        finally:
            await storage.aclose()
        # boto3's standard retries: a throttled or failing call was tried again
        puts = [r for r in failing.requests if r.method == "PUT"]
        assert len(puts) == (2 if status >= 500 else 1)


async def test_a_server_that_does_not_answer_in_time_is_storage_unavailable() -> None:
    with FailingS3(200, "unused") as stalling:
        stalling.inject(Stall(5.0), times=10)
        storage = storage_at(stalling.url, "media", timeout=0.3, attempts=1)
        try:
            with pytest.raises(StorageUnavailable, match="ReadTimeout"):
                await storage.get(storage_key(uuid.uuid4(), uuid.uuid4(), "png"))
        finally:
            await storage.aclose()


async def test_nothing_listening_is_storage_unavailable(s3_url: str) -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    server.stop()
    storage = storage_at(f"http://{host}:{port}", "media", attempts=1, timeout=2)
    try:
        with pytest.raises(StorageUnavailable, match="EndpointConnectionError"):
            await storage.get(storage_key(uuid.uuid4(), uuid.uuid4(), "png"))
    finally:
        await storage.aclose()
