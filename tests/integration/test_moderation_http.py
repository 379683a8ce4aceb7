"""Moderation wired into the service (issue #19), over HTTP on the embedded default's
container shape (in-memory queue and in-process worker, local storage, the CPU
stand-in GPU; the test database instead of the embedded one): an operator's rule
refuses a prompt before anything is held, and strikes suspend generation."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.moderation import Reason, Surface
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ModerationSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.integration.test_failover import grant
from tests.standins.loopback import Fail
from tests.standins.openai_moderation import OpenAIModerationStandIn

pytestmark = pytest.mark.postgres

SECRET = "moderation-http-" + "m" * 32


def headers(user: uuid.UUID) -> dict[str, str]:
    token = mint_token(SECRET, user_id=user)
    return {"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())}


@pytest.fixture
async def banned_word(pg_url: str) -> AsyncIterator[str]:
    """An operator's rule (a word of this test's own: the database is shared) refusing
    as ``hate``; removed afterwards."""
    word = "zorblax" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    rule = ModerationRule(
        id=uuid.uuid4(),
        pattern=word,
        kind=RuleKind.WORD,
        label=Reason.HATE,
        action=RuleAction.REFUSE,
        updated_at=datetime.now(UTC),
    )
    engine = make_engine(pg_url, pool_size=1)
    factory = SqlUnitOfWorkFactory(engine)
    try:
        async with factory() as uow:
            await uow.moderation.add_rule(rule)
            await uow.commit()
        yield word
        async with factory() as uow:
            await uow.moderation.delete_rule(rule.id)
            await uow.commit()
    finally:
        await engine.dispose()


@pytest.fixture
async def client(pg_url: str, tmp_path: Path) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(poll_interval=0.02),
        # images off: these tests are about prompts (NudeNet is covered on its own)
        moderation=ModerationSettings(images="off"),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def strikes_of(pg_url: str, user: uuid.UUID) -> list[tuple[Reason, Surface]]:
    engine = make_engine(pg_url, pool_size=1)
    try:
        async with SqlUnitOfWorkFactory(engine)() as uow:
            found = await uow.moderation.strikes(user, datetime.now(UTC) - timedelta(days=1))
    finally:
        await engine.dispose()
    return [(s.reason, s.surface) for s in found]


def image(prompt: str) -> dict[str, object]:
    return {"model": "flux-schnell", "prompt": prompt, "width": 256, "height": 256}


async def test_a_prompt_matching_an_operator_rule_is_refused_charges_nothing_and_counts_a_strike(
    client: AsyncTestClient[Litestar], pg_url: str, banned_word: str
) -> None:
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    before = (await client.get("/v1/me/credits", headers=headers(user))).json()["items"]

    # the rule's word disguised: capitals and leetspeak are undone before matching
    disguised = banned_word.upper().replace("O", "0")
    r = await client.post(
        "/v1/generate/image", json=image(f"a poster saying {disguised}"), headers=headers(user)
    )

    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert (problem["code"], problem["field"], problem["reason"]) == (
        "content_refused",
        "prompt",
        "hate",
    )
    me = (await client.get("/v1/me", headers=headers(user))).json()
    assert me["credits"] == 50, "nothing held"
    after = (await client.get("/v1/me/credits", headers=headers(user))).json()["items"]
    assert after == before, "no ledger entry"
    assert await strikes_of(pg_url, user) == [(Reason.HATE, Surface.PROMPT)]

    allowed = await client.post(
        "/v1/generate/image", json=image("a poster of a lighthouse"), headers=headers(user)
    )
    assert allowed.status_code == 202, allowed.text


async def test_enough_refusals_suspend_generation_with_403_generation_suspended(
    client: AsyncTestClient[Litestar], pg_url: str, banned_word: str
) -> None:
    user = uuid.uuid4()
    await grant(pg_url, user, 50)
    for _ in range(5):  # the default strike policy: 5 points within 30 days
        r = await client.post(
            "/v1/generate/image", json=image(f"{banned_word} again"), headers=headers(user)
        )
        assert r.status_code == 422, r.text

    r = await client.post("/v1/generate/image", json=image("a lighthouse"), headers=headers(user))

    assert r.status_code == 403, r.text
    problem = r.json()
    assert problem["code"] == "generation_suspended"
    until = datetime.fromisoformat(problem["suspendedUntil"])
    assert timedelta(days=6) < until - datetime.now(UTC) <= timedelta(days=7)
    me = (await client.get("/v1/me", headers=headers(user))).json()
    assert me["credits"] == 50


@pytest.fixture
def openai() -> Iterator[OpenAIModerationStandIn]:
    with OpenAIModerationStandIn() as standin:
        standin.scores["gore"] = {"violence/graphic": 0.97}
        yield standin


async def openai_client(
    pg_url: str, tmp_path: Path, openai: OpenAIModerationStandIn, *, fail_closed: bool = False
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(poll_interval=0.02),
        moderation=ModerationSettings(
            images="off",
            openai_api_key=openai.api_key,
            openai_base_url=openai.base_url,
            fail_closed=fail_closed,
        ),
    )
    async with AsyncTestClient(create_app(settings)) as c:
        yield c


async def test_with_openai_configured_its_scores_refuse_after_the_free_checks(
    pg_url: str, tmp_path: Path, openai: OpenAIModerationStandIn
) -> None:
    async for client in openai_client(pg_url, tmp_path, openai):
        broke = uuid.uuid4()  # no credits: 402 before anything is sent to OpenAI
        r = await client.post("/v1/generate/image", json=image("gore"), headers=headers(broke))
        assert r.status_code == 402, r.text
        assert openai.requests == []

        user = uuid.uuid4()
        await grant(pg_url, user, 50)
        r = await client.post(
            "/v1/generate/image", json=image("a scene of gore"), headers=headers(user)
        )
        assert r.status_code == 422, r.text
        assert (r.json()["code"], r.json()["reason"]) == ("content_refused", "violence_graphic")
        assert len(openai.requests) == 1
        assert (await client.get("/v1/me", headers=headers(user))).json()["credits"] == 50


async def test_fail_closed_moderation_answers_503_when_openai_fails_and_charges_nothing(
    pg_url: str, tmp_path: Path, openai: OpenAIModerationStandIn
) -> None:
    openai.inject(Fail(500), times=10)
    async for client in openai_client(pg_url, tmp_path, openai, fail_closed=True):
        user = uuid.uuid4()
        await grant(pg_url, user, 50)
        r = await client.post(
            "/v1/generate/image", json=image("a lighthouse"), headers=headers(user)
        )
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "unavailable" and r.headers["retry-after"] == "5"
        assert (await client.get("/v1/me", headers=headers(user))).json()["credits"] == 50
        assert await strikes_of(pg_url, user) == []
