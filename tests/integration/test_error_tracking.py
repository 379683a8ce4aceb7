"""Errors reach Sentry scrubbed: the app and a worker with ``SENTRY_DSN`` pointing at a
stand-in of Sentry's envelope endpoint on loopback (tests/standins/sentry.py).

sentry-sdk is global to a process: each test starts it (through the code under test)
and the fixture closes it again, so no other test sends anything anywhere."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from taskiq import InMemoryBroker

from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.adapters.supabase.auth import mint_token
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.error_tracking import init_error_tracking
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    ObservabilitySettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from genstudio.ports.unit_of_work import UnitOfWork
from tests.standins.sentry import SentryStandIn

SECRET = "s" * 40
UNUSED_DATABASE = "postgresql://genstudio@127.0.0.1:9/never-connected"
PROMPT = "a secret fox at dawn"
EMAIL = "someone@example.com"


class BrokenUowFactory:
    """A database adapter with a bug: every unit of work raises, naming what it held."""

    def __call__(self) -> UnitOfWork:
        raise RuntimeError(f"adapter bug with prompt='{PROMPT}' for {EMAIL}")


@pytest.fixture
def sentry() -> Iterator[SentryStandIn]:
    with SentryStandIn() as standin:
        try:
            yield standin
        finally:
            client = sentry_sdk.get_client()
            client.close(timeout=2)
            sentry_sdk.get_global_scope().set_client(None)


def events_after_flush(sentry: SentryStandIn, *, at_least: int = 1) -> list[dict[str, Any]]:
    sentry_sdk.flush(timeout=5)
    deadline = time.monotonic() + 5
    while len(sentry.events) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return sentry.events


@pytest.fixture
async def app(sentry: SentryStandIn, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        database=DatabaseSettings(url=UNUSED_DATABASE),
        observability=ObservabilitySettings(sentry_dsn=sentry.dsn(), sentry_environment="test"),
    )
    working = InMemoryUnitOfWorkFactory()

    def configure(container: AppContainer) -> None:
        container.uow_factory.override(providers.Object(working))

    application = create_app(
        settings,
        runtime_opener=lambda s: open_runtime(s, in_process_worker=False, configure=configure),
    )
    async with AsyncTestClient(application) as client:
        client.app.state.container.uow_factory.override(providers.Object(BrokenUowFactory()))
        yield client


async def test_an_unexpected_error_in_a_route_is_sent_once_and_scrubbed(
    app: AsyncTestClient[Litestar], sentry: SentryStandIn
) -> None:
    user = uuid.uuid4()
    token = mint_token(SECRET, user_id=user, email=EMAIL)
    response = await app.get(
        "/v1/me",
        headers={
            "Authorization": f"Bearer {token}",
            "X-Api-Key": "sk-live-should-not-leave",
            "Idempotency-Key": "kept-on-purpose",
            "X-Request-Id": "req-123",
        },
    )
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"

    [event] = events_after_flush(sentry)
    text = json.dumps(event)
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["tags"]["process"] == "api" and event["environment"] == "test"
    request = event["request"]
    assert request["method"] == "GET" and request["url"].endswith("/v1/me")
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert headers["idempotency-key"] == "kept-on-purpose"
    assert headers["x-request-id"] == "req-123"
    assert headers.get("x-api-key") in (None, "[Filtered]")
    assert headers.get("authorization") in (None, "[Filtered]")
    for secret in (PROMPT, EMAIL, token, "sk-live-should-not-leave", token.split(".")[1]):
        assert secret not in text, f"{secret[:20]} left the process"
    assert "prompt='[Filtered]'" in event["exception"]["values"][-1]["value"]
    assert "vars" not in json.dumps(event["exception"]), "no local variables are collected"


async def test_answers_the_client_caused_send_nothing(
    app: AsyncTestClient[Litestar], sentry: SentryStandIn
) -> None:
    app.app.state.container.uow_factory.reset_override()
    app.app.state.container.uow_factory.override(providers.Object(InMemoryUnitOfWorkFactory()))
    user = uuid.uuid4()
    headers = {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}
    assert (await app.get(f"/v1/generate/{uuid.uuid4()}", headers=headers)).status_code == 404
    assert (await app.get("/v1/me")).status_code == 401
    assert (await app.post("/v1/generate/image", headers=headers, json={})).status_code in (
        400,
        422,
    )
    assert events_after_flush(sentry, at_least=0) == []


async def test_a_worker_task_that_raises_is_sent_scrubbed_and_tagged(
    sentry: SentryStandIn,
) -> None:
    assert init_error_tracking(ObservabilitySettings(sentry_dsn=sentry.dsn()), process="worker")
    broker = InMemoryBroker()

    async def deliver(purchase_token: str) -> None:
        raise ValueError(
            f"store answered for purchase_token='{purchase_token}' owner {EMAIL} "
            "https://play.example/verify?token=abc123&sku=pack"
        )

    task = broker.register_task(deliver, task_name="genstudio.test_deliver")
    await broker.startup()
    try:
        sent = await task.kiq("opaque-purchase-token-value")
        result = await sent.wait_result(timeout=5)
        assert result.is_err
    finally:
        await broker.shutdown()

    [event] = events_after_flush(sentry)
    text = json.dumps(event)
    assert event["tags"]["process"] == "worker"
    assert event["exception"]["values"][-1]["type"] == "ValueError"
    assert event["logger"].startswith("taskiq")
    for secret in ("opaque-purchase-token-value", EMAIL, "abc123"):
        assert secret not in text


def test_without_a_dsn_nothing_starts() -> None:
    assert init_error_tracking(ObservabilitySettings(), process="api") is False
    assert not sentry_sdk.get_client().is_active()
    logging.getLogger("genstudio").error("no client: goes nowhere")
