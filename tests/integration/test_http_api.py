"""The HTTP API in-process (Litestar's test client) on the real Postgres, with the
GPU swapped through the container: error mapping, auth, and failure paths."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.jobs import FailureReason, JobError
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
from genstudio.ports.unit_of_work import UnitOfWorkFactory

SECRET = "integration-secret-" + "y" * 32
PROBLEM = "application/problem+json"


class Harness:
    def __init__(
        self,
        client: AsyncTestClient[Litestar],
        gpu: InMemoryGpuProvider,
        pg_url: str,
        uow_factory: UnitOfWorkFactory,
    ) -> None:
        self.client = client
        self.gpu = gpu
        self.pg_url = pg_url
        self.uow_factory = uow_factory

    def headers(self, user: uuid.UUID, **claims: object) -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}

    def service_headers(self) -> dict[str, str]:
        token = mint_token(SECRET, user_id=uuid.uuid4(), role="service_role")
        return {"Authorization": f"Bearer {token}"}

    async def grant(self, user: uuid.UUID, amount: int) -> None:
        # through the test's own engine: the app's pool lives on the app's event loop
        await grant_credits(
            self.uow_factory,
            user_id=user,
            amount=amount,
            reference="test",
            idempotency_key=str(uuid.uuid4()),
            now=datetime.now(UTC),
        )

    async def submit(
        self, user: uuid.UUID, key: str | None = None, **body: object
    ) -> httpx.Response:
        payload: dict[str, object] = {
            "model": "flux-schnell",
            "prompt": "a red fox",
            "width": 512,
            "height": 512,
        }
        payload.update(body)
        headers = self.headers(user) | {"Idempotency-Key": key or str(uuid.uuid4())}
        return await self.client.post("/v1/generate/image", json=payload, headers=headers)

    async def wait(self, user: uuid.UUID, job_id: str) -> dict[str, object]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = (
                await self.client.get(f"/v1/generate/{job_id}", headers=self.headers(user))
            ).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body  # type: ignore[no-any-return]
            await asyncio.sleep(0.02)
        raise AssertionError(body)

    def count(self, sql: str, *args: object) -> int:
        with psycopg.connect(self.pg_url) as conn:
            row = conn.execute(sql, args).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
async def api(fresh_db: str, tmp_path: Path) -> AsyncIterator[Harness]:
    """The app on a database of its own: its worker must meet no other test's jobs
    (a leftover job failing on this app's GPU would trip its circuit breaker)."""
    gpu = InMemoryGpuProvider("fake", steps=1)
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(
            poll_interval=0.01,
            worker_concurrency=2,
            retry_base_delay=0.01,
            retry_max_delay=0.05,
            reconcile_interval=0.2,
        ),
    )

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    engine = make_engine(fresh_db, pool_size=2)  # the test's own: the app's lives on its loop
    try:
        async with AsyncTestClient(app) as client:
            yield Harness(client, gpu, fresh_db, SqlUnitOfWorkFactory(engine))
    finally:
        await engine.dispose()


async def test_requests_without_a_valid_token_get_401_problems(api: Harness) -> None:
    user = uuid.uuid4()
    now = int(time.time())
    bad_tokens = {
        "missing": None,
        "garbage": "not-a-jwt",
        "forged": jwt.encode(
            {"sub": str(user), "aud": "authenticated", "exp": now + 60},
            "wrong-secret-" + "z" * 32,
            algorithm="HS256",
        ),
        "expired": jwt.encode(
            {"sub": str(user), "aud": "authenticated", "exp": now - 3600}, SECRET, algorithm="HS256"
        ),
        "wrong audience": jwt.encode(
            {"sub": str(user), "aud": "anon", "exp": now + 60}, SECRET, algorithm="HS256"
        ),
    }
    for label, token in bad_tokens.items():
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await api.client.get("/v1/me", headers=headers)
        assert response.status_code == 401, label
        assert response.headers["content-type"].startswith(PROBLEM), label
        assert response.json()["status"] == 401
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_me_creates_the_profile_on_first_sight(api: Harness) -> None:
    user = uuid.uuid4()
    body = (await api.client.get("/v1/me", headers=api.headers(user))).json()
    assert body == {
        "id": str(user),
        "email": None,
        "credits": 0,
        "subscriptionTier": "free",
        "subscriptionExpiresAt": None,
    }


async def test_models_lists_the_catalog_with_prices(api: Harness) -> None:
    items = (await api.client.get("/v1/models", headers=api.headers(uuid.uuid4()))).json()["items"]
    flux = next(m for m in items if m["id"] == "flux-schnell")
    assert flux["kind"] == "image" and flux["price"]["type"] == "per_image"
    assert set(flux) == {
        "id", "kind", "displayName", "description", "price", "maxWidth", "maxHeight", "maxCount",
        "bases",
    }  # fmt: skip
    assert flux["bases"] == []  # only a training model names the image models it trains for
    # the documented camelCase shape, tiers ordered from the smallest
    tiers = flux["price"]["tiers"]
    assert tiers and all(set(t) == {"maxMegapixels", "credits"} for t in tiers)
    assert [t["maxMegapixels"] for t in tiers] == sorted(t["maxMegapixels"] for t in tiers)
    prices = {m["price"]["type"]: m["price"] for m in items}
    assert set(prices["per_second"]) == {"type", "perSecond"}
    assert prices["per_second"]["perSecond"]["480p"] > 0
    if "per_step" in prices:
        assert set(prices["per_step"]) == {"type", "perHundredSteps", "steps"}  # allowed steps


async def test_insufficient_credits_is_a_402_and_leaves_nothing(api: Harness) -> None:
    user = uuid.uuid4()
    await api.grant(user, 1)
    response = await api.submit(user, count=2)
    assert response.status_code == 402
    problem = response.json()
    assert problem["required"] == 2 and problem["available"] == 1
    assert response.headers["content-type"].startswith(PROBLEM)
    assert api.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 0
    assert api.count("SELECT count(*) FROM credit_ledger WHERE user_id = %s", user) == 1
    assert api.count("SELECT count(*) FROM idempotency_records WHERE user_id = %s", user) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"width": 500}, "width"),
        ({"width": "big"}, "width"),
        ({"height": 4096}, "height"),
        ({"count": 0}, "count"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "a cat\u0000"}, "prompt"),  # not a 500 from the database at commit
        ({"negativePrompt": "x" * 2001}, "negativePrompt"),  # as the app names it
        ({"prompt": "a cat\u0000", "enhance": True}, "prompt"),
        ({"model": "no-such-model"}, "model"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field(
    api: Harness, body: dict[str, object], field: str
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 10)
    response = await api.submit(user, None, **body)
    assert response.status_code == 422
    assert response.json()["field"] == field, response.json()
    assert api.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 0
    assert api.count("SELECT credits FROM profiles WHERE id = %s", user) == 10


async def test_a_missing_idempotency_key_is_refused(api: Harness) -> None:
    user = uuid.uuid4()
    response = await api.client.post(
        "/v1/generate/image",
        json={"model": "flux-schnell", "prompt": "x"},
        headers=api.headers(user),
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_another_users_job_is_not_found(api: Harness) -> None:
    owner, other = uuid.uuid4(), uuid.uuid4()
    await api.grant(owner, 5)
    job = (await api.submit(owner)).json()
    for method, path in (
        ("GET", f"/v1/generate/{job['id']}"),
        ("POST", f"/v1/generate/{job['id']}/cancel"),
    ):
        response = await api.client.request(method, path, headers=api.headers(other))
        assert response.status_code == 404
        assert response.headers["content-type"].startswith(PROBLEM)


async def test_a_job_the_provider_refuses_fails_and_refunds(api: Harness) -> None:
    user = uuid.uuid4()
    await api.grant(user, 4)
    api.gpu.fail_with = JobError(FailureReason.CONTENT, "the prompt was refused")
    job = (await api.submit(user, count=2)).json()
    done = await api.wait(user, job["id"])
    assert done["status"] == "failed"
    assert done["error"] == {"reason": "content", "message": "the prompt was refused"}
    me = (await api.client.get("/v1/me", headers=api.headers(user))).json()
    assert me["credits"] == 4
    items = (await api.client.get("/v1/me/credits", headers=api.headers(user))).json()["items"]
    assert [e["kind"] for e in items] == ["release", "hold", "grant"]
    assert api.count("SELECT count(*) FROM images WHERE user_id = %s", user) == 0


async def test_while_the_provider_is_down_jobs_wait_and_complete_when_it_returns(
    api: Harness,
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 2)
    api.gpu.down = True
    job = (await api.submit(user)).json()
    await asyncio.sleep(1.0)  # several reconciler ticks: health checks say "down"
    waiting = (await api.client.get(f"/v1/generate/{job['id']}", headers=api.headers(user))).json()
    assert waiting["status"] == "queued" and not waiting["deadLettered"]
    assert waiting["attempts"] < 3, "a provider known to be down costs no attempts"
    assert (await api.client.get("/v1/me", headers=api.headers(user))).json()["credits"] == 1
    api.gpu.down = False
    done = await api.wait(user, job["id"])
    assert done["status"] == "succeeded"
    assert (await api.client.get("/v1/me", headers=api.headers(user))).json()["credits"] == 1
    kinds = [
        e["kind"]
        for e in (await api.client.get("/v1/me/credits", headers=api.headers(user))).json()["items"]
    ]
    assert kinds == ["settle", "hold", "grant"]


async def test_a_job_that_keeps_failing_is_dead_lettered_refunded_and_rerunnable(
    api: Harness,
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 2)
    api.gpu.fail_with = JobError(FailureReason.INFRASTRUCTURE, "CUDA out of memory")
    job = (await api.submit(user)).json()
    done = await api.wait(user, job["id"])
    assert done["status"] == "failed" and done["deadLettered"] is True
    assert done["attempts"] == 3 and done["error"]["reason"] == "infrastructure"  # type: ignore[index]
    assert (await api.client.get("/v1/me", headers=api.headers(user))).json()["credits"] == 2
    events = (
        await api.client.get(f"/v1/generate/{job['id']}/events", headers=api.headers(user))
    ).json()["items"]
    assert [e["kind"] for e in events] == ["retrying", "retrying", "dead_lettered"]

    # operators see it, and re-run it once the provider is fixed
    ops = api.service_headers()
    assert (
        await api.client.get("/v1/admin/dead-letters", headers=api.headers(user))
    ).status_code == 403
    dead = (await api.client.get("/v1/admin/dead-letters", headers=ops)).json()["items"]
    assert job["id"] in [d["id"] for d in dead]
    api.gpu.fail_with = None
    rerun = await api.client.post(f"/v1/admin/jobs/{job['id']}/rerun", headers=ops)
    assert rerun.status_code == 202, rerun.text
    again = await api.client.post(f"/v1/admin/jobs/{job['id']}/rerun", headers=ops)
    assert again.json()["id"] == rerun.json()["id"], "a second re-run is the same re-run"
    assert rerun.json()["rerunOf"] == job["id"]
    finished = await api.wait(user, rerun.json()["id"])
    assert finished["status"] == "succeeded"
    assert (await api.client.get("/v1/me", headers=api.headers(user))).json()["credits"] == 1
    not_dead = await api.client.post(f"/v1/admin/jobs/{rerun.json()['id']}/rerun", headers=ops)
    assert not_dead.status_code == 404


async def test_the_queue_dashboard_reports_depth_in_flight_and_rates(api: Harness) -> None:
    user = uuid.uuid4()
    await api.grant(user, 10)
    job = (await api.submit(user)).json()
    await api.wait(user, job["id"])
    assert (await api.client.get("/v1/admin/queues")).status_code == 401
    assert (await api.client.get("/v1/admin/queues", headers=api.headers(user))).status_code == 403
    board = (await api.client.get("/v1/admin/queues", headers=api.service_headers())).json()
    image = next(k for k in board["kinds"] if k["kind"] == "image")
    assert image["succeeded"]["5m"] >= 1 and image["successRate"]["5m"] is not None
    assert board["providers"] == [
        {"name": "fake", "healthy": True, "breaker": "closed", "detail": ""}
    ]
    assert board["streams"] == []  # no Redis in this deployment


async def test_the_queue_dashboard_answers_at_once_when_a_provider_or_redis_stalls(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from genstudio.core.services import reconcile

    async def stalled() -> None:
        await asyncio.sleep(60)

    class RedisDown:
        async def streams(self) -> list[object]:
            raise ConnectionError("Redis does not answer")

    monkeypatch.setattr(reconcile, "HEALTH_TIMEOUT", 0.2)
    monkeypatch.setattr(api.gpu, "health", stalled)
    container = api.client.app.state.container
    container.queue_inspector.override(providers.Object(RedisDown()))
    started = time.monotonic()
    response = await api.client.get("/v1/admin/queues", headers=api.service_headers())
    assert time.monotonic() - started < 5
    assert response.status_code == 200, response.text
    board = response.json()
    [provider] = board["providers"]
    assert provider["healthy"] is False and "TimeoutError" in provider["detail"]
    assert board["streams"] == [] and "Redis does not answer" in board["streamsError"]
    assert board["kinds"] is not None  # the Postgres part is all there


async def test_the_ledger_paginates_with_a_cursor(api: Harness) -> None:
    user = uuid.uuid4()
    for _ in range(5):
        await api.grant(user, 1)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (
            await api.client.get("/v1/me/credits", params=params, headers=api.headers(user))
        ).json()
        seen += [e["id"] for e in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    bad = await api.client.get("/v1/me/credits", params={"cursor": "!!"}, headers=api.headers(user))
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"


async def test_health_and_openapi(api: Harness) -> None:
    assert (await api.client.get("/health/live")).json() == {"status": "ok", "checks": {}}
    ready = await api.client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"postgres": "ok"}
    schema = (await api.client.get("/schema/openapi.json")).json()
    assert "/v1/generate/image" in schema["paths"]


async def test_readiness_answers_503_within_its_bound_when_postgres_stalls(
    api: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts and never answers: the probe times out, and the answer
    does not wait for the probe to unwind (psycopg's cancel of a query on a stalled
    server takes up to 10 s)."""
    from genstudio.entrypoints.http.health import controller as health

    async def stalled(runtime: object) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await asyncio.sleep(10)  # as psycopg's cancel request, then its wait
            raise

    monkeypatch.setattr(health, "_postgres", stalled)
    started = time.monotonic()
    ready = await api.client.get("/health/ready")
    assert time.monotonic() - started < health.CHECK_TIMEOUT + 2
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
    assert ready.json()["checks"] == {"postgres": "down: TimeoutError"}


async def test_an_unauthenticated_submission_is_a_401_whatever_its_body(api: Harness) -> None:
    """The token is checked before the body: a caller without one learns nothing
    about what the endpoint accepts."""
    body: object  # JSON of any shape
    for body in ({"model": "flux-schnell", "prompt": "x"}, {"width": "wide"}, []):
        response = await api.client.post(
            "/v1/generate/image", json=body, headers={"Idempotency-Key": "k-1"}
        )
        assert response.status_code == 401, (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    ("body", "status", "code", "detail"),
    [
        (b'{"model":', 400, "malformed_json", None),  # truncated
        (b'{"model": "flux-schnell",}', 400, "malformed_json", None),  # a syntax error
        (b"", 400, "malformed_json", "the body is empty; send a JSON object"),
        (b"[]", 422, "invalid_input", None),  # JSON, but not an object
        (b'"a red fox"', 422, "invalid_input", None),
        # nested past Python's recursion limit: msgspec's RecursionError, not a 500
        (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "malformed_json", None),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_refused_naming_the_body(
    api: Harness, body: bytes, status: int, code: str, detail: str | None
) -> None:
    user = uuid.uuid4()
    await api.grant(user, 10)
    headers = api.headers(user) | {
        "Idempotency-Key": str(uuid.uuid4()),
        "Content-Type": "application/json",
    }
    response = await api.client.post("/v1/generate/image", content=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert (problem["code"], problem["field"]) == (code, "body"), problem
    assert detail is None or problem["detail"] == detail
    assert api.count("SELECT count(*) FROM jobs WHERE user_id = %s", user) == 0


async def test_json_nested_too_deeply_is_malformed_even_without_a_token(api: Harness) -> None:
    nested = b'{"a":' * 5000 + b"1" + b"}" * 5000
    headers = {"Content-Type": "application/json"}
    response = await api.client.post("/v1/webhooks/apple", content=nested, headers=headers)
    assert response.status_code == 400, response.text
    assert (response.json()["code"], response.json()["field"]) == ("malformed_json", "body")


@pytest.mark.parametrize("route", ["edit", "video"])
async def test_a_form_endpoint_sent_json_is_a_malformed_form(api: Harness, route: str) -> None:
    user = uuid.uuid4()
    headers = api.headers(user) | {"Idempotency-Key": str(uuid.uuid4())}
    response = await api.client.post(f"/v1/generate/{route}", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["field"]) == ("malformed_form", "body")


async def test_an_unknown_path_or_a_job_id_that_is_not_a_uuid_is_not_found(api: Harness) -> None:
    headers = api.headers(uuid.uuid4())
    for path in ("/v1/generate/not-a-uuid", "/v1/no-such-thing"):
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found", response.text
