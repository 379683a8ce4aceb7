"""The MediaStorage contract (genstudio.testing.contracts.storage) over SupabaseStorage
and its stand-in; then what only it does: signed URLs served over HTTP until they
expire, private buckets, and every failure knob."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import httpx
import jwt
import pytest

from genstudio.adapters.supabase_storage import PublicBucketError, SupabaseStorage
from genstudio.ports.storage import ObjectNotFound, StorageUnavailable
from genstudio.testing.contracts.storage import MediaStorageContract, StorageFactory, a_key
from tests.standins.loopback import Fail, RateLimit, Request, Stall
from tests.standins.supabase_storage import SupabaseStorageStandIn

TIMEOUT = 0.5


@pytest.fixture(scope="module")
def standin() -> Iterator[SupabaseStorageStandIn]:
    with SupabaseStorageStandIn() as server:
        yield server


def make_storage(standin: SupabaseStorageStandIn, **overrides: object) -> SupabaseStorage:
    options: dict[str, object] = {
        "url": standin.url,
        "service_key": standin.service_key,
        "bucket": "media",
        "timeout": TIMEOUT,
        "backoff": 0.01,
    }
    options.update(overrides)
    return SupabaseStorage(**options)  # type: ignore[arg-type]


@pytest.fixture
async def storage(standin: SupabaseStorageStandIn) -> AsyncIterator[SupabaseStorage]:
    standin.reset()
    store = make_storage(standin)
    await store.ensure_bucket()
    standin.requests.clear()
    yield store
    await store.aclose()


@pytest.fixture(params=[True, False], ids=["legacy-400-errors", "real-status-errors"])
async def both_error_styles(
    request: pytest.FixtureRequest, storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> SupabaseStorage:
    standin.legacy_errors = request.param
    return storage


class TestSupabaseStorage(MediaStorageContract):
    @pytest.fixture
    def storage_factory(self, standin: SupabaseStorageStandIn) -> StorageFactory:
        standin.reset()

        async def make() -> SupabaseStorage:
            store = make_storage(standin)
            await store.ensure_bucket()
            return store

        return make


# -- the contract, Supabase's way --------------------------------------------------------


async def test_a_signed_url_names_the_object_and_its_expiry(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    before = int(time.time())

    url = await storage.signed_url(key, 300)

    parsed = urllib.parse.urlsplit(url)
    assert url.startswith(f"{standin.url}/storage/v1/object/sign/media/")
    assert urllib.parse.unquote(parsed.path).endswith(key)
    token = urllib.parse.parse_qs(parsed.query)["token"][0]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["url"] == f"media/{key}"
    assert before + 300 <= claims["exp"] <= int(time.time()) + 300


async def test_missing_objects_are_object_not_found_in_either_error_style(
    both_error_styles: SupabaseStorage,
) -> None:
    with pytest.raises(ObjectNotFound):
        await both_error_styles.get(a_key())
    with pytest.raises(ObjectNotFound):
        await both_error_styles.signed_url(a_key(), 60)
    await both_error_styles.delete(a_key())


async def test_the_requests_carry_the_service_key_and_upsert(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/webp")

    upload = standin.requests[-1]
    assert (upload.method, upload.path) == ("POST", f"/storage/v1/object/media/{key}")
    assert upload.headers["authorization"] == f"Bearer {standin.service_key}"
    assert upload.headers["apikey"] == standin.service_key
    assert upload.headers["x-upsert"] == "true"
    assert upload.headers["content-type"] == "image/webp"
    assert standin.buckets["media"].objects[key].content_type == "image/webp"


async def test_objects_sit_under_their_key_in_the_bucket(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key("mp4")
    await storage.put(key, b"video", "video/mp4")
    assert list(standin.buckets["media"].objects) == [key]


# -- signed URLs over HTTP ------------------------------------------------------------------


async def test_a_signed_url_serves_the_object_over_http_without_credentials(
    storage: SupabaseStorage,
) -> None:
    key = a_key()
    await storage.put(key, b"\x89PNG pixels", "image/png")
    url = await storage.signed_url(key, 60)

    async with httpx.AsyncClient() as http:
        response = await http.get(url)

    assert response.status_code == 200
    assert response.content == b"\x89PNG pixels"
    assert response.headers["content-type"] == "image/png"


async def test_a_signed_url_is_refused_after_it_expires(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    url = await storage.signed_url(key, 60)

    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 200
        standin.advance(57)  # a whole second of slack: the token's exp has 1 s granularity
        assert (await http.get(url)).status_code == 200
        standin.advance(4)
        expired = await http.get(url)

    assert expired.status_code == 400
    assert expired.json()["error"] == "InvalidJWT"
    assert expired.json()["message"] == "jwt expired"


async def test_a_signed_url_really_expires_in_real_time(storage: SupabaseStorage) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    # expiries are whole seconds (iat is truncated): a 2 s URL is good for at least 1 s
    url = await storage.signed_url(key, 2)

    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 200
        await asyncio.sleep(3.05)
        assert (await http.get(url)).status_code == 400


async def test_a_signed_url_opens_only_its_own_object(storage: SupabaseStorage) -> None:
    mine, other = a_key(), a_key()
    await storage.put(mine, b"mine", "image/png")
    await storage.put(other, b"other", "image/png")
    url = await storage.signed_url(mine, 60)
    forged = url.replace(urllib.parse.quote(mine), urllib.parse.quote(other))
    tampered = url[:-1] + ("A" if url[-1] != "A" else "B")

    async with httpx.AsyncClient() as http:
        assert (await http.get(forged)).status_code == 400
        assert (await http.get(tampered)).status_code == 400
        assert (await http.get(url.split("?")[0])).status_code == 400


async def test_a_deleted_objects_signed_url_serves_nothing(storage: SupabaseStorage) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    url = await storage.signed_url(key, 60)
    await storage.delete(key)

    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 400
    assert response.json()["statusCode"] == "404"


# -- private by default ------------------------------------------------------------------------


async def test_the_bucket_is_created_private(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    assert standin.buckets["media"].public is False
    await storage.ensure_bucket()  # and doing it again is fine
    assert list(standin.buckets) == ["media"]


async def test_objects_are_not_readable_without_the_service_key(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"secret", "image/png")
    base = f"{standin.url}/storage/v1/object"
    anon = {"apikey": standin.anon_key, "Authorization": f"Bearer {standin.anon_key}"}

    async with httpx.AsyncClient() as http:
        for url in (f"{base}/media/{key}", f"{base}/authenticated/media/{key}"):
            assert (await http.get(url)).status_code == 401
            refused = await http.get(url, headers=anon)
            assert refused.status_code == 400
            assert refused.json()["statusCode"] == "404"
        public = await http.get(f"{base}/public/media/{key}")
        assert public.status_code == 400
        assert b"secret" not in public.content


async def test_a_public_bucket_is_refused(standin: SupabaseStorageStandIn) -> None:
    standin.reset()
    admin = make_storage(standin, bucket="shared")
    async with httpx.AsyncClient() as http:
        await http.post(
            f"{standin.url}/storage/v1/bucket",
            json={"id": "shared", "name": "shared", "public": True},
            headers={
                "apikey": standin.service_key,
                "Authorization": f"Bearer {standin.service_key}",
            },
        )
    with pytest.raises(PublicBucketError):
        await admin.ensure_bucket()
    await admin.aclose()


async def test_the_first_upload_creates_a_missing_bucket_private(
    standin: SupabaseStorageStandIn,
) -> None:
    standin.reset()
    storage = make_storage(standin, bucket="fresh")
    key = a_key()
    await storage.put(key, b"data", "image/png")
    assert standin.buckets["fresh"].public is False
    assert await storage.get(key) == b"data"
    await storage.aclose()


async def test_without_auto_create_a_missing_bucket_is_storage_unavailable(
    standin: SupabaseStorageStandIn,
) -> None:
    standin.reset()
    storage = make_storage(standin, bucket="nowhere", auto_create_bucket=False)
    with pytest.raises(StorageUnavailable, match="Bucket not found"):
        await storage.put(a_key(), b"data", "image/png")
    assert standin.buckets == {}
    await storage.aclose()


async def test_a_wrong_service_key_is_storage_unavailable(standin: SupabaseStorageStandIn) -> None:
    storage = make_storage(standin, service_key="not-the-key")
    with pytest.raises(StorageUnavailable, match="service key"):
        await storage.put(a_key(), b"data", "image/png")
    await storage.aclose()


@pytest.mark.parametrize(
    "key", ["", "../escape.png", "/etc/passwd", "user//x.png", "user/.hidden", "a\\b.png", "C:/x"]
)
async def test_bad_keys_are_refused_before_any_request(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn, key: str
) -> None:
    for call in (
        storage.put(key, b"data", "image/png"),
        storage.get(key),
        storage.signed_url(key, 60),
        storage.delete(key),
    ):
        with pytest.raises(ValueError):
            await call
    assert standin.requests == []


# -- failure knobs ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_storage_unavailable(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn, status: int
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    for call in (
        lambda: storage.put(key, b"new", "image/png"),
        lambda: storage.get(key),
        lambda: storage.signed_url(key, 60),
        lambda: storage.delete(key),
    ):
        standin.inject(Fail(status))
        with pytest.raises(StorageUnavailable, match=str(status)):
            await call()
    assert await storage.get(key) == b"data"


async def test_a_stalled_request_times_out_as_storage_unavailable(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")
    for call in (lambda: storage.get(key), lambda: storage.put(key, b"x", "image/png")):
        standin.inject(Stall(5))
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="within"):
            await call()
        assert time.monotonic() - started < TIMEOUT + 1


async def test_an_unreachable_service_is_storage_unavailable() -> None:
    storage = SupabaseStorage(url="http://127.0.0.1:9", service_key="k", timeout=TIMEOUT)
    with pytest.raises(StorageUnavailable, match="unreachable"):
        await storage.get(a_key())
    await storage.aclose()


async def test_rate_limits_are_retried_with_backoff(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    standin.inject(RateLimit(retry_after=0.05), times=2)
    started = time.monotonic()

    await storage.put(key, b"data", "image/png")

    assert time.monotonic() - started >= 0.1
    assert [r.method for r in standin.requests] == ["POST", "POST", "POST"]
    assert await storage.get(key) == b"data"


async def test_rate_limits_without_retry_after_back_off_exponentially(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    standin.inject(RateLimit(retry_after=None), times=3)
    key = a_key()
    started = time.monotonic()
    await storage.put(key, b"data", "image/png")
    # 0.01 + 0.02 + 0.04 seconds at least (plus jitter)
    assert time.monotonic() - started >= 0.07
    assert len(standin.requests) == 4


async def test_rate_limits_past_the_retries_are_storage_unavailable(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    standin.inject(RateLimit(retry_after=0), times=10)
    with pytest.raises(StorageUnavailable, match="rate limited"):
        await storage.get(a_key())
    assert len(standin.requests) == storage.max_retries + 1


async def test_a_long_retry_after_is_capped(
    standin: SupabaseStorageStandIn, storage: SupabaseStorage
) -> None:
    capped = make_storage(standin, max_backoff=0.05, max_retries=1)
    standin.inject(RateLimit(retry_after=3600))
    started = time.monotonic()
    with pytest.raises(ObjectNotFound):
        await capped.get(a_key())
    assert time.monotonic() - started < 1
    await capped.aclose()


async def test_faults_on_one_route_leave_the_others_alone(
    storage: SupabaseStorage, standin: SupabaseStorageStandIn
) -> None:
    key = a_key()
    await storage.put(key, b"data", "image/png")

    def signing(request: Request) -> bool:
        return request.method == "POST" and "/object/sign/" in request.path

    standin.inject(Fail(503), times=5, when=signing)
    assert await storage.get(key) == b"data"
    with pytest.raises(StorageUnavailable):
        await storage.signed_url(key, 60)
