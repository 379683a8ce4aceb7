"""API fuzzing (issue #19): schemathesis over the served ``/schema/openapi.json``, every
operation, every check, a bounded and derandomized number of examples (stable in CI).

The app is the real one (``create_app``: our uvicorn protocol on loopback, Postgres of
its own, the in-process worker on an in-memory GPU), with both stores configured
against their loopback stand-ins (Apple's offline, Google's Play API), rate limits off.
The fuzz user holds plenty of credits: a valid submission is accepted (202), not a 402.

Nothing is left out. Three kinds of input no schema can make valid by drawing them,
so a drawn valid-looking request fills them in (and only those), in positive cases:

- ``model``: an id the catalog offers for that kind (a drawn string names no model);
- ``Idempotency-Key``: fresh per submission (a drawn key repeats with another body);
- ``cursor``: opaque, only one the API returned is valid: a drawn one is left out;
- file parts: a real 64x64 PNG (drawn bytes are no image, or a 1x1 one), and for a
  video the frames its ``inputType`` takes;
- integral floats (``472.0``): JSON Schema's ``integer`` admits them, our decoding does
  not (``"width": 512.0`` is refused on purpose, issue #19's strict integers, and no
  JSON Schema keyword says "written without a fraction"), so a drawn valid body sends
  them as integers; a float where an integer belongs stays a negative case's business;
- signed store data (``signedTransaction``, ``purchaseToken``, webhook payloads) cannot
  be drawn at all: those operations run every check but ``positive_data_acceptance``
  (their refusals, 400 ``invalid_purchase`` and 401, are the checks of
  tests/integration/test_purchases_*.py and test_webhooks_runpod.py).

Operations routes run with a service-role token; media (no token: the signature is the
credential) is fuzzed without valid signatures, so it answers 403/404: its 200/206/416
answers are tests/unit/test_media_ranges.py's.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
import pytest
import schemathesis
import uvicorn
from dependency_injector import providers
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.specs.openapi.checks import positive_data_acceptance

from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.services.credits import grant_credits
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol
from genstudio.entrypoints.iap_settings import AppleSettings
from genstudio.entrypoints.limits_settings import RateSettings
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests import servers
from tests.standins.apple import AppleSigner
from tests.standins.google_play import GooglePlayStandIn, google_settings

SECRET = "fuzz-secret-" + "f" * 32
USER = uuid.uuid4()
#: a valid model per kind, for drawn requests that must name one
MODELS = {
    "/v1/generate/image": "flux-schnell",
    "/v1/generate/edit": "sdxl-inpaint",
    "/v1/generate/video": "wan-2.1",
    "/v1/training": "flux-lora",
}
#: the file parts of the forms
FILES = frozenset({"image", "mask", "firstFrame", "lastFrame", "photo", "avatar"})
#: operations whose valid bodies carry signed data no generator can forge
SIGNED = frozenset(
    {
        "/v1/purchases/apple",
        "/v1/purchases/google",
        "/v1/webhooks/apple",
        "/v1/webhooks/google",
        "/v1/webhooks/runpod",
    }
)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    return buffer.getvalue()


PNG = _png()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def own_db() -> Iterator[str]:
    """A database of its own: the app's worker must meet no other test's jobs."""
    from genstudio.adapters.supabase.migrate import upgrade

    name = f"genstudio_fuzz_{uuid.uuid4().hex[:10]}"
    admin = f"{servers.pg_server()}/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{servers.pg_server()}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def base_url(own_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app served by uvicorn with our protocol (what ``genstudio serve`` runs)."""
    signer = AppleSigner()
    with GooglePlayStandIn() as play:
        settings_ = Settings(
            database=DatabaseSettings(url=own_db),
            supabase=SupabaseSettings(jwt_secret=SECRET),
            server=ServerSettings(data_dir=tmp_path_factory.mktemp("fuzz")),
            jobs=JobSettings(poll_interval=0.01),
            rate=RateSettings(enabled=False),
            apple=AppleSettings(
                root_certificates=signer.root_b64,
                bundle_id="app.genstudio.fuzz",
                environment="Sandbox",
                online_checks=False,
            ),
            google=google_settings(
                play,
                audience="https://fuzz.genstudio.app/v1/webhooks/google",
                package="app.genstudio.fuzz",
                push_account="pubsub@fuzz.iam.gserviceaccount.com",
            ),
        )
        gpu = InMemoryGpuProvider("fake", steps=1)

        def configure(container: AppContainer) -> None:
            container.gpu.override(providers.Object(gpu))

        app = create_app(settings_, runtime_opener=lambda s: open_runtime(s, configure=configure))
        port = _free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, http=CorkedHttpToolsProtocol, log_level="error"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
            time.sleep(0.02)
        _grant(own_db)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(15)


def _grant(url: str) -> None:
    import asyncio

    async def grant() -> None:
        engine = make_engine(url, pool_size=1)
        try:
            await grant_credits(
                SqlUnitOfWorkFactory(engine),
                user_id=USER,
                amount=1_000_000,
                reference="fuzz",
                idempotency_key=str(uuid.uuid4()),
                now=datetime.now(UTC),
            )
        finally:
            await engine.dispose()

    asyncio.run(grant())


def _document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json, built as the app builds it
    (``test_the_served_document_is_the_one_fuzzed`` holds the two equal): schemathesis'
    fixture loader does not run under pytest 9, so the schema is loaded at collection."""
    app = create_app(
        Settings(
            database=DatabaseSettings(url="postgresql://unused/x"),
            supabase=SupabaseSettings(jwt_secret=SECRET),
        )
    )
    return app.openapi_schema.to_schema()


DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(base_url: str) -> None:
    served = httpx.get(f"{base_url}/schema/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == json.loads(json.dumps(DOCUMENT))


def _valid_inputs(case: Any) -> None:
    """Fill in what a drawn valid request cannot draw (see the module docstring)."""
    path = case.operation.path
    if case.headers is not None and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = str(uuid.uuid4())  # one per intended submission
    if isinstance(case.query, dict):
        case.query.pop("cursor", None)  # opaque: only a cursor this API returned is one
    if isinstance(case.body, dict):
        for name, value in list(case.body.items()):
            case.body[name] = _integral(value)
        if path in MODELS and "model" in case.body:
            case.body["model"] = MODELS[path]
        for name in FILES & set(case.body):
            case.body[name] = PNG
        if path == "/v1/generate/video":  # which frames a video takes follows inputType
            wanted = {"image": {"image"}, "keyframes": {"firstFrame", "lastFrame"}}
            frames = wanted.get(case.body.get("inputType", "text"), set())
            for name in {"image", "firstFrame", "lastFrame"}:
                if name in frames:
                    case.body[name] = PNG
                else:
                    case.body.pop(name, None)


def _integral(value: Any) -> Any:
    """``value`` with every integral float written as an integer (472.0 -> 472)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


@schema.parametrize()
@settings(
    max_examples=4,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_the_api_keeps_its_documented_contract(case: Any, base_url: str) -> None:
    path = case.operation.path
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive:
        # a copy edited in place: coverage cases share their containers (an edit would
        # leak into the next case), and schemathesis takes edits made before the call as
        # the case's starting state, where an assigned body is judged again, and a form
        # holding a file is never judged valid (a filled-in form would count as invalid)
        case = case.derive()
        _valid_inputs(case)
    role = "service_role" if path.startswith("/v1/admin/") else "authenticated"
    token = mint_token(SECRET, user_id=USER, role=role)
    headers = {"Authorization": f"Bearer {token}"}
    excluded = [positive_data_acceptance] if path in SIGNED else []
    case.call_and_validate(base_url=base_url, headers=headers, excluded_checks=excluded)
