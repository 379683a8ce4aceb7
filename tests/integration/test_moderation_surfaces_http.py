"""Moderation of every other text and image that enters, over HTTP on Postgres (issue
#19): captions, comments, usernames, bios, avatars, training photos and edit pictures
are refused with 422 ``content_refused`` naming the part, nothing half-written (no post,
no comment, no profile change, no stored file, nothing held), and one strike per
refusal, also when the same request is retried (or sent many times at once) with its
Idempotency-Key.

The classifiers are the service's own: the operator's rule list (a rule of this
module's own word) and NudeNet on CPU. No explicit picture ships with the tests, so
NudeNet is configured here to count a face as what it refuses: the astronaut's
photograph (scikit-image's) is then "refused" and the cat's allowed, through the
model's real detections."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient
from PIL import Image

from genstudio.adapters.nudenet import NudeNetClassifier
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.media import MediaAsset, MediaKind
from genstudio.core.model.moderation import Reason, Surface
from genstudio.core.model.moderation_rules import ModerationRule, RuleAction, RuleKind
from genstudio.core.services.credits import grant_credits
from genstudio.core.services.moderation.rules import RuleListClassifier
from genstudio.core.services.moderation.service import Moderation
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.http.app import create_app
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import (
    DatabaseSettings,
    JobSettings,
    ModerationSettings,
    ServerSettings,
    Settings,
    SupabaseSettings,
)
from tests.contract import photos as p

pytestmark = pytest.mark.postgres

SECRET = "moderation-surfaces-" + "s" * 32
PROBLEM = "application/problem+json"
#: this module's own banned word (the database is shared with other modules)
WORD = "qwyxtor" + uuid.uuid4().hex[:6].translate(str.maketrans("0123456789", "ghijklmnop"))
MASKED = "flibbet"


def jpeg(image: Image.Image, side: int = 768) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").resize((side, side)).save(out, "JPEG", quality=90)
    return out.getvalue()


def png(image: Image.Image, side: int = 512) -> bytes:
    out = io.BytesIO()
    image.resize((side, side)).save(out, "PNG")
    return out.getvalue()


def white_mask(side: int = 512) -> bytes:
    out = io.BytesIO()
    Image.new("L", (side, side), 255).save(out, "PNG")
    return out.getvalue()


FACE = p.astronaut(768)
CAT = p.cat()


class World:
    def __init__(
        self,
        client: AsyncTestClient[Litestar],
        uow: SqlUnitOfWorkFactory,
        pg_url: str,
        data: Path,
    ) -> None:
        self.client = client
        self.uow = uow
        self.pg_url = pg_url
        self.data = data

    def headers(self, user: uuid.UUID, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}
        return headers | ({"Idempotency-Key": key} if key else {})

    async def user(self, credits: int = 0) -> uuid.UUID:
        user = uuid.uuid4()
        async with self.uow() as uow:
            await uow.profiles.ensure(user, None)
            await uow.commit()
        if credits:
            await grant_credits(
                self.uow,
                user_id=user,
                amount=credits,
                reference="test",
                idempotency_key=str(uuid.uuid4()),
                now=datetime.now(UTC),
            )
        return user

    async def strikes(self, user: uuid.UUID) -> list[tuple[Reason, Surface]]:
        async with self.uow() as uow:
            found = await uow.moderation.strikes(user, datetime.now(UTC) - timedelta(days=1))
        return [(s.reason, s.surface) for s in found]

    def count(self, table: str, user: uuid.UUID) -> int:
        with psycopg.connect(self.pg_url) as conn:
            row = conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (user,))
            found = row.fetchone()
        assert found is not None
        return int(found[0])

    def files(self, fragment: str = "") -> list[Path]:
        return [f for f in self.data.rglob("*") if f.is_file() and fragment in str(f)]


async def rule(factory: SqlUnitOfWorkFactory, pattern: str, action: RuleAction) -> ModerationRule:
    made = ModerationRule(
        id=uuid.uuid4(),
        pattern=pattern,
        kind=RuleKind.WORD,
        label=Reason.HATE,
        action=action,
        updated_at=datetime.now(UTC),
    )
    async with factory() as uow:
        await uow.moderation.add_rule(made)
        await uow.commit()
    return made


@pytest.fixture(scope="module")
async def world(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    data = tmp_path_factory.mktemp("surfaces")
    engine = make_engine(pg_url, pool_size=4)
    factory = SqlUnitOfWorkFactory(engine)
    rules = [
        await rule(factory, WORD, RuleAction.REFUSE),
        await rule(factory, MASKED, RuleAction.REWRITE),
    ]
    settings = Settings(
        database=DatabaseSettings(url=pg_url),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=data),
        jobs=JobSettings(poll_interval=0.02),
        moderation=ModerationSettings(images="off"),  # the classifiers are set below
    )

    def configure(container: AppContainer) -> None:
        moderation = providers.Singleton(
            lambda uow_factory, clock: Moderation(
                uow_factory,
                clock,
                [
                    RuleListClassifier(uow_factory, clock),
                    NudeNetClassifier(parts=frozenset({"FACE_FEMALE", "FACE_MALE"})),
                ],
            ),
            container.uow_factory,
            container.clock,
        )
        container.content_moderation.override(moderation)

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    try:
        async with AsyncTestClient(app) as client:
            yield World(client, factory, pg_url, data)
    finally:
        async with factory() as uow:
            for made in rules:
                await uow.moderation.delete_rule(made.id)
            await uow.commit()
        await engine.dispose()


def refused(response: object, field: str, reason: str) -> None:
    assert isinstance(response, httpx.Response)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem = response.json()
    assert (problem["code"], problem["field"], problem["reason"]) == (
        "content_refused",
        field,
        reason,
    )


# --- texts -------------------------------------------------------------------------


async def an_asset(w: World, user: uuid.UUID) -> uuid.UUID:
    asset_id = uuid.uuid4()
    async with w.uow() as uow:
        await uow.media.add(
            MediaAsset(
                id=asset_id,
                user_id=user,
                kind=MediaKind.IMAGE,
                storage_key=f"{user}/{asset_id}.png",
                content_type="image/png",
                width=2,
                height=1,
                byte_size=10,
                prompt="a cat",
                model_id="flux-schnell",
                job_id=None,
                created_at=datetime.now(UTC),
            )
        )
        await uow.commit()
    return asset_id


async def test_a_refused_caption_or_comment_writes_nothing_and_counts_once(world: World) -> None:
    w = world
    author, commenter = await w.user(), await w.user()
    asset = await an_asset(w, author)
    body = {"assetId": str(asset), "caption": f"look: {WORD.upper()}", "visibility": "public"}
    for _ in range(2):  # the app retries
        r = await w.client.post("/v1/posts", json=body, headers=w.headers(author))
        refused(r, "caption", "hate")
    assert w.count("posts", author) == 0
    assert await w.strikes(author) == [(Reason.HATE, Surface.CAPTION)]

    body["caption"] = f"a {MASKED} cat"
    r = await w.client.post("/v1/posts", json=body, headers=w.headers(author))
    assert r.status_code == 201, r.text
    assert r.json()["caption"] == "a ******* cat"
    post_id = r.json()["id"]

    r = await w.client.post(
        f"/v1/posts/{post_id}/comments", json={"body": f"{WORD}!"}, headers=w.headers(commenter)
    )
    refused(r, "body", "hate")
    assert w.count("comments", commenter) == 0
    assert await w.strikes(commenter) == [(Reason.HATE, Surface.COMMENT)]


async def test_a_refused_username_changes_nothing_and_a_bio_is_stored_masked(world: World) -> None:
    w = world
    user = await w.user()
    before = (await w.client.get("/v1/me/profile", headers=w.headers(user))).json()
    leet = WORD.replace("o", "0").replace("t", "7")
    r = await w.client.patch(
        "/v1/me/profile", json={"username": leet, "isPrivate": True}, headers=w.headers(user)
    )
    refused(r, "username", "hate")
    assert (await w.client.get("/v1/me/profile", headers=w.headers(user))).json() == before

    r = await w.client.patch(
        "/v1/me/profile", json={"bio": f"I paint {MASKED} daily"}, headers=w.headers(user)
    )
    assert r.status_code == 200, r.text
    assert r.json()["bio"] == "I paint ******* daily"
    assert await w.strikes(user) == [(Reason.HATE, Surface.USERNAME)]


# --- pictures ----------------------------------------------------------------------


async def test_a_refused_avatar_is_not_stored_and_an_allowed_one_is(world: World) -> None:
    w = world
    user = await w.user()
    r = await w.client.put(
        "/v1/me/profile/avatar",
        files={"avatar": ("me.jpg", jpeg(FACE), "image/jpeg")},
        headers=w.headers(user),
    )
    refused(r, "avatar", "sexual")
    assert w.files(f"{user}/avatars") == []
    profile = (await w.client.get("/v1/me/profile", headers=w.headers(user))).json()
    assert profile["avatarUrl"] is None
    assert await w.strikes(user) == [(Reason.SEXUAL, Surface.AVATAR)]

    r = await w.client.put(
        "/v1/me/profile/avatar",
        files={"avatar": ("cat.jpg", jpeg(CAT), "image/jpeg")},
        headers=w.headers(user),
    )
    assert r.status_code == 200, r.text
    assert len(w.files(f"{user}/avatars")) == 1


async def test_a_refused_training_photo_leaves_no_row_and_no_file(world: World) -> None:
    w = world
    user = await w.user()
    set_id = (
        await w.client.post("/v1/training/photo-sets", json={"name": "me"}, headers=w.headers(user))
    ).json()["id"]
    r = await w.client.post(
        f"/v1/training/photo-sets/{set_id}/photos",
        files={"photo": ("me.jpg", jpeg(FACE, 1024), "image/jpeg")},
        headers=w.headers(user),
    )
    refused(r, "photo", "sexual")
    assert w.count("training_photos", user) == 0
    assert w.files(str(user)) == []
    assert w.count("upload_intents", user) == 0


async def edit(w: World, user: uuid.UUID, key: str, picture: bytes) -> object:
    return await w.client.post(
        "/v1/generate/edit",
        data={"model": "sdxl-inpaint", "prompt": "a red door"},
        files={"image": ("a.png", picture, "image/png"), "mask": ("m.png", white_mask())},
        headers=w.headers(user, key),
    )


async def test_a_refused_edit_picture_holds_nothing_and_retries_add_no_strike(
    world: World,
) -> None:
    w = world
    user = await w.user(credits=20)
    key = str(uuid.uuid4())
    face = png(FACE)
    for _ in range(2):  # one after the other
        refused(await edit(w, user, key, face), "image", "sexual")
    # and several at once, on Postgres: whoever records first, one strike in all
    answers = await asyncio.gather(*(edit(w, user, key, face) for _ in range(4)))
    for answer in answers:
        refused(answer, "image", "sexual")
    assert await w.strikes(user) == [(Reason.SEXUAL, Surface.EDIT_INPUT)]
    me = (await w.client.get("/v1/me", headers=w.headers(user))).json()
    assert me["credits"] == 20, "nothing held"
    assert w.count("jobs", user) == 0
    assert w.files(str(user)) == []
    # a new request (a new key) refused again is a strike of its own
    refused(await edit(w, user, str(uuid.uuid4()), face), "image", "sexual")
    assert len(await w.strikes(user)) == 2

    allowed = await edit(w, user, str(uuid.uuid4()), png(CAT))
    assert getattr(allowed, "status_code", None) == 202


async def test_a_refused_prompt_retried_with_its_key_counts_one_strike(world: World) -> None:
    w = world
    user = await w.user(credits=20)
    key = str(uuid.uuid4())
    body = {"model": "flux-schnell", "prompt": f"a {WORD} poster", "width": 256, "height": 256}

    async def submit() -> object:
        return await w.client.post("/v1/generate/image", json=body, headers=w.headers(user, key))

    refused(await submit(), "prompt", "hate")
    for answer in await asyncio.gather(*(submit() for _ in range(5))):
        refused(answer, "prompt", "hate")
    assert await w.strikes(user) == [(Reason.HATE, Surface.PROMPT)]
