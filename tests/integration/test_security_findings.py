"""Issue #19's attacker findings, replayed against the running service (loopback stand-ins,
the real Postgres), one test per finding, so that each stays fixed.

Each test names its finding; each failed on the code before its fix (the docstring says
what it did then).
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image, ImageDraw

from adapters.memory.gpu import InMemoryGpuProvider
from adapters.supabase.auth import mint_token
from entrypoints.containers import AppContainer
from entrypoints.http.app import create_app
from entrypoints.runtime import open_runtime
from entrypoints.settings import Settings
from tests.integration.test_failover import grant
from tests.standins.loopback import Stall
from tests.standins.openrouter import OpenRouterStandIn

pytestmark = pytest.mark.postgres

SECRET = "security-findings-" + "s" * 32


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _picture() -> bytes:
    image = Image.linear_gradient("L").resize((160, 120)).convert("RGB")
    ImageDraw.Draw(image).ellipse((10, 10, 90, 70), fill=(220, 40, 70))
    return _png(image)


def _mask() -> bytes:
    mask = Image.new("L", (160, 120), 0)
    ImageDraw.Draw(mask).rectangle((40, 30, 99, 79), fill=255)
    return _png(mask)


PICTURE, MASK = _picture(), _mask()


def auth(user: uuid.UUID, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, user_id=user, **claims)}"}


def keyed(user: uuid.UUID, key: str | None = None) -> dict[str, str]:
    return auth(user) | {"Idempotency-Key": key or str(uuid.uuid4())}


@pytest.fixture
def openrouter() -> Iterator[OpenRouterStandIn]:
    with OpenRouterStandIn() as standin:
        yield standin


async def _client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    gpu = InMemoryGpuProvider("down")
    gpu.down = True  # jobs wait: no worker captions its results while a test counts calls

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    async with AsyncTestClient(app) as client:
        yield client


def with_openrouter(
    database_url: str, tmp_path: Path, openrouter: OpenRouterStandIn, **overrides: Any
) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret=SECRET,
        data_dir=tmp_path,
        poll_interval=0.02,
        openrouter_api_key=openrouter.api_key,
        openrouter_base_url=openrouter.base_url,
        **{"openrouter_timeout": 2.0, **overrides},
    )


@pytest.fixture
async def client(
    pg_url: str, tmp_path: Path, openrouter: OpenRouterStandIn
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async for c in _client(with_openrouter(pg_url, tmp_path, openrouter)):
        yield c


async def edit(
    client: AsyncTestClient[Litestar], user: uuid.UUID, key: str | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/generate/edit",
        data={"model": "sdxl-inpaint", "prompt": "a straw hat"},
        files={"image": ("p.png", PICTURE, "image/png"), "mask": ("m.png", MASK, "image/png")},
        headers=keyed(user, key),
    )


# --- paid calls only after the free checks ---------------------------------------------


async def test_enhance_from_a_user_without_credits_makes_no_paid_call(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn
) -> None:
    """Finding: ``enhance: true`` called OpenRouter before the model, size and balance
    checks: 10 submissions answered 402 made 10 paid calls."""
    user = uuid.uuid4()
    body = {"model": "flux-schnell", "prompt": "a fox", "width": 256, "height": 256}
    for _ in range(10):
        r = await client.post(
            "/v1/generate/image", json=body | {"enhance": True}, headers=keyed(user)
        )
        assert r.status_code == 402, r.text
    for wrong in ({"model": "no-such-model"}, {"width": 4096}, {"width": 100}):
        r = await client.post(
            "/v1/generate/image", json=body | wrong | {"enhance": True}, headers=keyed(user)
        )
        assert r.status_code == 422, r.text
    assert openrouter.requests == [], "a refused submission paid for an enhancement"


async def test_edits_from_a_user_without_credits_caption_nothing(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn
) -> None:
    """Finding: ``/v1/generate/edit`` captioned both uploads before the credit check."""
    user = uuid.uuid4()
    for _ in range(10):
        r = await edit(client, user)
        assert r.status_code == 402, r.text
    assert openrouter.requests == [], "a refused edit paid for captions"


async def test_a_replayed_edit_pays_for_no_second_caption(
    client: AsyncTestClient[Litestar], openrouter: OpenRouterStandIn, pg_url: str
) -> None:
    """Finding: a replay of an edit captioned its uploads again."""
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    key = str(uuid.uuid4())
    first = await edit(client, user, key)
    assert first.status_code == 202, first.text
    paid = len(openrouter.requests)
    assert paid == 2  # the picture and the mask, once
    for _ in range(5):
        again = await edit(client, user, key)
        assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert len(openrouter.requests) == paid, "a replay paid for captions again"


async def test_a_hanging_openrouter_leaves_the_captions_out_not_the_edit(
    pg_url: str, tmp_path: Path, openrouter: OpenRouterStandIn
) -> None:
    """Finding: with OpenRouter hanging, every edit failed with 503 at the request
    deadline: its two captions ran one after the other (2 x 2 s here, past a 3 s
    deadline). They run at once under one budget now, and a late one is left out."""
    settings = with_openrouter(pg_url, tmp_path, openrouter, request_deadline=3.0)
    openrouter.inject(Stall(30), times=100)
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    async for client in _client(settings):
        started = time.monotonic()
        r = await edit(client, user)
        took = time.monotonic() - started
        assert r.status_code == 202, r.text
        assert took < 3.0
        assert len(openrouter.requests) == 2
