"""Rate limits over HTTP (issue #19): budgets per user and tier and per address,
429 problems with Retry-After and the draft's RateLimit fields, on the in-process
counter (the embedded default's) and on Redis."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis.asyncio
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image

from genstudio.adapters.limits.counter import KEY_PREFIX
from genstudio.adapters.supabase.auth import mint_token
from genstudio.core.model.limits import Budget, Operation, RatePolicy, UserBudgets
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol
from genstudio.entrypoints.limits_settings import RateSettings
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    RedisSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests import servers
from tests.integration.test_failover import grant

SECRET = "limits-secret-" + "q" * 32
PROBLEM = "application/problem+json"


def _policy(**users: tuple[int, int]) -> RatePolicy:
    """Reads and submissions per user (free, subscriber) in 60 s; addresses generous,
    failed tokens 3 in 300 s."""
    budgets = {
        Operation[name.upper()]: UserBudgets(Budget(free, 60), Budget(sub, 60))
        for name, (free, sub) in users.items()
    }
    return RatePolicy(
        users=budgets,
        ips={Operation.READS: Budget(1000, 60), Operation.FAILED_AUTH: Budget(3, 300)},
    )


async def _forget_counters(url: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{KEY_PREFIX}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["in-process", "redis"])
async def app_for(
    request: pytest.FixtureRequest, fresh_db: str, tmp_path: Path
) -> AsyncIterator[object]:
    """A factory: the app with a given policy, counting in memory or in Redis."""
    redis_url = servers.redis_url() if request.param == "redis" else None
    if redis_url is not None:
        await _forget_counters(redis_url)
    clients: list[AsyncTestClient[Litestar]] = []

    async def make(policy: RatePolicy) -> AsyncTestClient[Litestar]:
        settings = Settings(
            database=DatabaseSettings(url=fresh_db),
            redis=RedisSettings(url=redis_url),
            supabase=SupabaseSettings(jwt_secret=SECRET),
            server=ServerSettings(data_dir=tmp_path),
            rate=RateSettings(enabled=True, policy=policy, tier_cache_seconds=0),
        )
        client = AsyncTestClient(create_app(settings))
        await client.__aenter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.__aexit__(None, None, None)
    if redis_url is not None:
        await _forget_counters(redis_url)


def _auth(user: uuid.UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}


def _fields(response: httpx.Response) -> tuple[str, str]:
    return response.headers["ratelimit-policy"], response.headers["ratelimit"]


async def test_concurrent_reads_over_the_budget_get_429_with_retry_after_and_ratelimit_fields(
    app_for: object,
) -> None:
    client = await app_for(_policy(reads=(5, 50)))  # type: ignore[operator]
    user = uuid.uuid4()
    answers = await asyncio.gather(*(client.get("/v1/me", headers=_auth(user)) for _ in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 5 + [429] * 7
    for ok in (r for r in answers if r.status_code == 200):
        policy, rate = _fields(ok)
        assert policy == '"reads-user";q=5;w=60, "reads-ip";q=1000;w=60'
        assert re.fullmatch(r'"reads-user";r=[0-4];t=(60|59), "reads-ip";r=\d+;t=(60|59)', rate)
    remaining = sorted(
        int(_fields(r)[1].split(";")[1][2:]) for r in answers if r.status_code == 200
    )
    assert remaining == [0, 1, 2, 3, 4]  # each admitted request saw its own count
    for refused in (r for r in answers if r.status_code == 429):
        assert refused.headers["content-type"].startswith(PROBLEM)
        problem = refused.json()
        assert problem["type"] == "https://genstudio.app/problems/rate-limited"
        assert problem["status"] == 429 and problem["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert _fields(refused)[0] == '"reads-user";q=5;w=60'
        assert re.fullmatch(r'"reads-user";r=0;t=(60|59)', _fields(refused)[1])


async def test_subscribers_get_their_tiers_budget(app_for: object, fresh_db: str) -> None:
    client = await app_for(_policy(reads=(3, 7)))  # type: ignore[operator]
    free, pro = uuid.uuid4(), uuid.uuid4()
    assert (await client.get("/v1/me", headers=_auth(pro))).status_code == 200  # its profile
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute("UPDATE profiles SET subscription_tier = 'pro' WHERE id = %s", (pro,))

    async def admitted(user: uuid.UUID, tries: int) -> int:
        answers = [await client.get("/v1/me", headers=_auth(user)) for _ in range(tries)]
        return sum(r.status_code == 200 for r in answers)

    assert await admitted(free, 10) == 3
    # the read that made the profile was counted while the user was free: a tier's
    # budget is a counter of its own
    assert await admitted(pro, 10) == 7
    refused = await client.get("/v1/me", headers=_auth(pro))
    assert refused.status_code == 429
    assert refused.headers["ratelimit-policy"] == '"reads-user";q=7;w=60'


async def test_refused_tokens_spend_the_addresses_failed_authentication_budget(
    app_for: object,
) -> None:
    client = await app_for(_policy(reads=(100, 100)))  # type: ignore[operator]
    bad = {"Authorization": "Bearer not-a-token"}
    first = [await client.get("/v1/me", headers=bad) for _ in range(3)]
    assert [r.status_code for r in first] == [401, 401, 401]
    blocked = await client.get("/v1/me", headers=bad)
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "rate_limited"
    assert blocked.headers["ratelimit-policy"] == '"failed-auth-ip";q=3;w=300'
    assert 1 <= int(blocked.headers["retry-after"]) <= 300
    # from that address, tokens are not even verified until the window moves on
    good = await client.get("/v1/me", headers=_auth(uuid.uuid4()))
    assert good.status_code == 429


async def test_an_address_budget_counts_every_user_and_anonymous_requests(
    app_for: object,
) -> None:
    policy = RatePolicy(users={}, ips={Operation.READS: Budget(4, 60)})
    client = await app_for(policy)  # type: ignore[operator]
    answers = [await client.get("/v1/me", headers=_auth(uuid.uuid4())) for _ in range(3)]
    answers.append(await client.get("/v1/me"))  # no token: counted by its address alone
    assert [r.status_code for r in answers] == [200, 200, 200, 401]
    refused = await client.get("/v1/me")
    assert refused.status_code == 429
    assert refused.headers["ratelimit-policy"] == '"reads-ip";q=4;w=60'
    # probes and the API's description are never limited
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.get("/schema/openapi.json")).status_code == 200


# --- the findings of issue #19 that this module keeps fixed -----------------------


async def test_finding_300_reads_of_me_at_full_speed_are_refused_past_the_default_budget(
    fresh_db: str, tmp_path: Path
) -> None:
    """Finding: 300 GETs of /v1/me at 257/s, never a 429."""
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        rate=RateSettings(enabled=True),  # the defaults GENSTUDIO_RATE_* leave
    )
    free_reads = RatePolicy().users[Operation.READS].free.amount
    async with AsyncTestClient(create_app(settings)) as client:
        headers = _auth(uuid.uuid4())
        statuses = [(await client.get("/v1/me", headers=headers)).status_code for _ in range(300)]
    assert statuses.count(200) == free_reads < 300
    assert statuses.count(429) == 300 - free_reads


def _form_of(parts: int) -> tuple[bytes, str]:
    boundary = "genstudio-boundary"
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
        for i in range(parts)
    )
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("parts", [65, 1001])
async def test_finding_a_form_of_too_many_parts_is_refused_413(
    fresh_db: str, tmp_path: Path, parts: int
) -> None:
    """Finding: more than 1,000 multipart parts gave 400 instead of 413."""
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    body, content_type = _form_of(parts)
    user = uuid.uuid4()
    await grant(fresh_db, user, 50)  # a user without credits is refused before the body
    headers = _auth(user) | {"Content-Type": content_type, "Idempotency-Key": "k" * 16}
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.post("/v1/generate/edit", content=body, headers=headers)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == "too_large"
    assert response.json()["field"] == "body"


async def _tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def served() -> Iterator[str]:
    """uvicorn with our HTTP protocol (what ``genstudio serve`` runs) in a thread of its
    own; the app is a stand-in: the head is refused before any app sees it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        _tiny_app,
        host="127.0.0.1",
        port=port,
        http=CorkedHttpToolsProtocol,
        lifespan="off",
        log_level="error",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _send_huge_head(address: str, size: int) -> tuple[bytes, int]:
    """Send a request whose one header is ``size`` bytes; the answer and how many
    bytes were sent before the server answered or closed."""
    host, port = address.split(":")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Big: ")
        chunk = b"a" * 65536
        try:
            while sent < size:
                conn.sendall(chunk)
                sent += len(chunk)
        except OSError:  # reset or broken pipe: the server closed on us
            pass
        try:
            return conn.recv(65536), sent
        except OSError:
            return b"", sent


def test_finding_50_mb_of_headers_are_refused_431_at_once_and_health_stays_fast(
    served: str,
) -> None:
    """Finding: 50 MB of headers were accepted without a token; four in parallel
    stalled /health/live for 3 s."""
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        attacks = [pool.submit(_send_huge_head, served, 50 * 1024 * 1024) for _ in range(4)]
        latencies = []
        with httpx.Client(base_url=f"http://{served}") as client:
            while not all(a.done() for a in attacks):
                started = time.monotonic()
                assert client.get("/health/live").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.01)
        for attack in attacks:
            answer, sent = attack.result()
            assert answer == b"" or answer.startswith(b"HTTP/1.1 431 "), answer[:100]
            assert sent < 50 * 1024 * 1024  # refused long before the end
    assert max(latencies, default=0) < 1.0  # generous: it was 3 s, it is milliseconds


def test_a_head_of_more_than_100_fields_is_refused_431(served: str) -> None:
    host, port = served.split(":")
    head = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-F%d: v\r\n" % i for i in range(101))
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + b"\r\n")
        answer = conn.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert b'"code":"headers_too_large"' in answer
    # a normal head on a fresh connection is served
    assert httpx.get(f"http://{served}/", headers={f"X-F{i}": "v" for i in range(90)}).text == "ok"


# --- uploads read as they stream (issue #19) ------------------------------------------

MB = 1024 * 1024


@pytest.fixture
async def uploads(pg_url: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
    )
    async with AsyncTestClient(create_app(settings)) as client:
        yield client


def _keyed(user: uuid.UUID) -> dict[str, str]:
    return _auth(user) | {"Idempotency-Key": str(uuid.uuid4())}


@pytest.mark.parametrize(
    ("route", "form", "files", "field"),
    [
        (
            "/v1/generate/edit",
            {"model": "sdxl-inpaint", "prompt": "a red door"},
            {"image": 21 * MB, "mask": 10},
            "image",
        ),
        (
            "/v1/generate/video",
            {"model": "wan-2.1", "prompt": "a fox", "inputType": "keyframes"},
            {"firstFrame": 10, "lastFrame": 21 * MB},
            "lastFrame",
        ),
        (
            "/v1/generate/edit",
            {"model": "sdxl-inpaint", "prompt": "x" * 20_000},
            {"image": 10, "mask": 10},
            "prompt",
        ),
    ],
    ids=["edit-image", "video-frame", "text-part"],
)
async def test_a_part_over_its_limit_is_refused_413_naming_it_and_nothing_is_kept(
    uploads: AsyncTestClient[Litestar],
    pg_url: str,
    route: str,
    form: dict[str, str],
    files: dict[str, int],
    field: str,
) -> None:
    user = uuid.uuid4()
    await grant(pg_url, user, 100)
    response = await uploads.post(
        route,
        data=form,
        files={name: (f"{name}.png", b"\x89PNG" + b"\0" * size) for name, size in files.items()},
        headers=_keyed(user),
    )
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert (response.json()["code"], response.json()["field"]) == ("too_large", field)
    with psycopg.connect(pg_url) as conn:
        held = conn.execute("SELECT count(*) FROM jobs WHERE user_id = %s", (user,)).fetchone()
    assert held == (0,)


async def test_edit_and_video_uploads_without_credits_are_refused_402_unread(
    uploads: AsyncTestClient[Litestar],
) -> None:
    """The balance is looked at before the body: the 402 names what the cheapest
    submission of the kind costs (the body could not be paid for whatever it holds)."""
    user = uuid.uuid4()
    for route, least in (("/v1/generate/edit", 1), ("/v1/generate/video", 5)):
        response = await uploads.post(
            route,
            data={"model": "anything"},
            files={"image": ("a.png", b"\x89PNG" + b"\0" * MB)},
            headers=_keyed(user),
        )
        assert response.status_code == 402, response.text
        assert (response.json()["required"], response.json()["available"]) == (least, 0)


async def test_a_replay_is_answered_whatever_the_balance_left(
    uploads: AsyncTestClient[Litestar], pg_url: str
) -> None:
    """A key with a stored answer lets the body be read: the retry of an edit that
    spent the last credit replays its 202 instead of a 402."""
    user = uuid.uuid4()
    await grant(pg_url, user, 1)
    picture, mask = Image.new("RGB", (256, 256), "navy"), Image.new("L", (256, 256), 255)
    files = {
        "image": ("a.png", _png(picture), "image/png"),
        "mask": ("m.png", _png(mask), "image/png"),
    }
    headers = _keyed(user)
    form = {"model": "sdxl-inpaint", "prompt": "a red door"}
    first = await uploads.post("/v1/generate/edit", data=form, files=files, headers=headers)
    assert first.status_code == 202, first.text
    again = await uploads.post("/v1/generate/edit", data=form, files=files, headers=headers)
    assert again.status_code == 202, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]


async def test_photo_and_avatar_parts_over_their_limits_are_refused_413_naming_them(
    uploads: AsyncTestClient[Litestar],
) -> None:
    user = uuid.uuid4()
    created = await uploads.post("/v1/training/photo-sets", json={}, headers=_auth(user))
    set_id = created.json()["id"]
    photo = await uploads.post(
        f"/v1/training/photo-sets/{set_id}/photos",
        files={"photo": ("p.jpg", b"\xff\xd8" + b"\0" * (25 * MB + 1))},
        headers=_auth(user),
    )
    avatar = await uploads.put(
        "/v1/me/profile/avatar",
        files={"avatar": ("a.jpg", b"\xff\xd8" + b"\0" * (20 * MB + 1))},
        headers=_auth(user),
    )
    for response, field in ((photo, "photo"), (avatar, "avatar")):
        assert response.status_code == 413, response.text
        assert (response.json()["code"], response.json()["field"]) == ("too_large", field)
    # another user's set: 404 before the photo is read
    stranger = await uploads.post(
        f"/v1/training/photo-sets/{set_id}/photos",
        files={"photo": ("p.jpg", b"\xff\xd8" + b"\0" * MB)},
        headers=_auth(uuid.uuid4()),
    )
    assert stranger.status_code == 404, stranger.text


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
