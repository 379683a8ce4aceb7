"""Training jobs over HTTP on the real Postgres, with the CPU trainer (gpu_local):
start a training on ten accepted photos, watch it, get the model, generate with it;
replays, conflicts, too few photos and another user's model; deleting a model."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from dependency_injector import providers
from litestar import Litestar
from litestar.testing import AsyncTestClient

from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory
from genstudio.core.model.training.models import check_lora
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
from tests.contract import photos as p
from tests.contract.faces import distinct_face_jpegs

pytestmark = pytest.mark.postgres
SECRET = "training-secret-" + "t" * 32
PROBLEM = "application/problem+json"


class Api:
    def __init__(self, client: AsyncTestClient[Litestar], pg_url: str, engine: Any) -> None:
        self.client = client
        self.pg_url = pg_url
        self.uow_factory = SqlUnitOfWorkFactory(engine)

    def headers(self, user: uuid.UUID, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {mint_token(SECRET, user_id=user)}"}
        return headers | ({"Idempotency-Key": key} if key else {})

    async def grant(self, user: uuid.UUID, amount: int) -> None:
        await grant_credits(
            self.uow_factory,
            user_id=user,
            amount=amount,
            reference="test",
            idempotency_key=str(uuid.uuid4()),
            now=datetime.now(UTC),
        )

    async def photo_set(self, user: uuid.UUID, photos: list[bytes]) -> str:
        created = await self.client.post(
            "/v1/training/photo-sets", json={"name": "me"}, headers=self.headers(user)
        )
        set_id = str(created.json()["id"])
        for data in photos:
            response = await self.client.post(
                f"/v1/training/photo-sets/{set_id}/photos",
                files={"photo": ("photo.jpg", data, "image/jpeg")},
                headers=self.headers(user),
            )
            assert response.status_code == 201, response.text
        return set_id

    async def train(
        self, user: uuid.UUID, set_id: str, key: str | None = None, **body: object
    ) -> httpx.Response:
        payload: dict[str, object] = {
            "photoSetId": set_id,
            "steps": 500,
            "triggerWord": "ohwx",
            "name": "Me",
        }
        payload.update(body)
        return await self.client.post(
            "/v1/training", json=payload, headers=self.headers(user, key or str(uuid.uuid4()))
        )

    async def wait(self, user: uuid.UUID, path: str) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = (await self.client.get(path, headers=self.headers(user))).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return body
            await asyncio.sleep(0.05)
        raise AssertionError(body)

    def rows(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.pg_url) as conn:
            return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def faces() -> list[bytes]:
    return distinct_face_jpegs(10)


@pytest.fixture
async def api(fresh_db: str, tmp_path: Path) -> AsyncIterator[Api]:
    gpu = LocalGpuProvider("local", min_seconds=0.3)
    settings = Settings(
        database=DatabaseSettings(url=fresh_db),
        supabase=SupabaseSettings(jwt_secret=SECRET),
        server=ServerSettings(data_dir=tmp_path),
        jobs=JobSettings(
            poll_interval=0.02, retry_base_delay=0.01, retry_max_delay=0.05, reconcile_interval=0.2
        ),
    )

    def configure(container: AppContainer) -> None:
        container.gpu.override(providers.Object(gpu))

    app = create_app(settings, runtime_opener=lambda s: open_runtime(s, configure=configure))
    engine = make_engine(fresh_db, pool_size=2)
    try:
        async with AsyncTestClient(app) as client:
            yield Api(client, fresh_db, engine)
    finally:
        await engine.dispose()
        await gpu.aclose()


async def test_a_training_holds_its_price_makes_a_model_and_the_model_generates(
    api: Api, faces: list[bytes], tmp_path: Path
) -> None:
    me, stranger = uuid.uuid4(), uuid.uuid4()
    await api.grant(me, 100)
    set_id = await api.photo_set(me, faces)

    catalog = (await api.client.get("/v1/models", headers=api.headers(me))).json()["items"]
    trainer = next(m for m in catalog if m["kind"] == "training")
    assert trainer["price"] == {"type": "per_step", "perHundredSteps": 10,
                                "steps": [500, 1000, 1500, 2000]}  # fmt: skip

    started = await api.train(me, set_id)
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["status"], job["cost"], job["total"], job["photoCount"]) == ("queued", 50, 500, 10)
    assert started.headers["location"] == f"/v1/training/{job['id']}"

    done = await api.wait(me, f"/v1/training/{job['id']}")
    assert done["status"] == "succeeded", done
    assert (done["step"], done["percent"], done["etaSeconds"]) == (500, 100, None)
    assert done["samples"] and done["trainedModelId"]
    sample = await api.client.get(done["samples"][0]["url"])
    assert sample.content.startswith(b"\x89PNG")

    models = (await api.client.get("/v1/training/models", headers=api.headers(me))).json()
    mine = (await api.client.get("/v1/models/mine", headers=api.headers(me))).json()
    assert models == mine and len(models["items"]) == 1
    model = models["items"][0]
    assert (model["id"], model["status"], model["triggerWord"], model["name"]) == (
        done["trainedModelId"], "ready", "ohwx", "Me")  # fmt: skip
    assert (await api.client.get(model["thumbnailUrl"])).status_code == 200
    ((key,),) = api.rows("SELECT weights_key FROM trained_models WHERE id = %s", model["id"])
    check_lora((tmp_path / "media" / key).read_bytes())
    ledger = api.rows(
        "SELECT kind, amount FROM credit_ledger WHERE user_id = %s ORDER BY created_at", me
    )
    assert [k for k, _ in ledger][-2:] == ["hold", "settle"] and (("hold", -50) in ledger)

    # the user's own model, on the model it was trained for, priced as the catalog says
    headers = api.headers(me, str(uuid.uuid4()))
    body = {"model": "flux-schnell", "prompt": "ohwx at the beach", "width": 512,
            "height": 512, "loraId": model["id"], "loraScale": 0.8}  # fmt: skip
    image = await api.client.post("/v1/generate/image", json=body, headers=headers)
    assert image.status_code == 202, image.text
    assert (image.json()["params"]["loraId"], image.json()["cost"]) == (model["id"], 1)
    assert (await api.wait(me, f"/v1/generate/{image.json()['id']}"))["status"] == "succeeded"

    # another user's model is a 404 naming loraId, before anything is held
    await api.grant(stranger, 10)
    headers = api.headers(stranger, str(uuid.uuid4()))
    refused = await api.client.post("/v1/generate/image", json=body, headers=headers)
    assert (refused.status_code, refused.headers["content-type"]) == (404, PROBLEM)
    assert refused.json()["field"] == "loraId"
    assert api.rows("SELECT count(*) FROM credit_holds WHERE user_id = %s", stranger) == [(0,)]
    assert (await api.client.get(f"/v1/training/{job['id']}", headers=api.headers(stranger))
            ).status_code == 404  # fmt: skip

    # the set is kept by the model; deleting the model deletes both, and the files
    kept = await api.client.delete(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    assert kept.status_code == 409
    renamed = await api.client.patch(
        f"/v1/training/models/{model['id']}", json={"name": " Me, again "}, headers=api.headers(me)
    )
    assert renamed.json()["name"] == "Me, again"
    gone = await api.client.delete(f"/v1/training/models/{model['id']}", headers=api.headers(me))
    assert gone.status_code == 204
    assert api.rows("SELECT count(*) FROM trained_models") == [(0,)]
    assert api.rows("SELECT count(*) FROM photo_sets WHERE id = %s", set_id) == [(0,)]
    assert not (tmp_path / "media" / key).exists()


async def test_a_training_replays_its_key_refuses_another_body_and_too_few_photos(
    api: Api, faces: list[bytes]
) -> None:
    me = uuid.uuid4()
    await api.grant(me, 200)
    set_id = await api.photo_set(me, faces)
    key = str(uuid.uuid4())
    first = await api.train(me, set_id, key, steps=1000)
    again = await api.train(me, set_id, key, steps=1000)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    other = await api.train(me, set_id, key, steps=1500)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_mismatch")
    assert api.rows("SELECT count(*) FROM jobs WHERE user_id = %s", me) == [(1,)]

    wrong = await api.train(me, set_id, steps=750)
    assert (wrong.status_code, wrong.json()["field"]) == (422, "steps")
    bad_word = await api.train(me, set_id, triggerWord="a b")
    assert (bad_word.status_code, bad_word.json()["field"]) == (422, "triggerWord")

    few = await api.photo_set(me, [*faces[:3], p.jpeg(p.cat())])
    refused = await api.train(me, few)
    assert (refused.status_code, refused.json()["field"]) == (422, "photoSetId")
    assert "3 accepted photos" in refused.json()["detail"]
    missing = await api.train(me, str(uuid.uuid4()))
    assert (missing.status_code, missing.json()["field"]) == (404, "photoSetId")
    # only the first training holds credits
    assert api.rows("SELECT count(*) FROM credit_holds WHERE user_id = %s", me) == [(1,)]
    await api.wait(me, f"/v1/training/{first.json()['id']}")


async def test_cancelling_a_training_releases_its_hold_and_makes_no_model(
    api: Api, faces: list[bytes]
) -> None:
    me = uuid.uuid4()
    await api.grant(me, 200)
    set_id = await api.photo_set(me, faces)
    started = await api.train(me, set_id, steps=2000)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]

    cancelled = await api.client.post(f"/v1/generate/{job_id}/cancel", headers=api.headers(me))

    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    view = (await api.client.get(f"/v1/training/{job_id}", headers=api.headers(me))).json()
    assert (view["status"], view["trainedModelId"], view["samples"]) == ("cancelled", None, [])
    ledger = api.rows(
        "SELECT kind, amount FROM credit_ledger WHERE user_id = %s AND kind <> 'grant'"
        " ORDER BY created_at",
        me,
    )
    assert ledger == [("hold", -200), ("release", 200)]
    await asyncio.sleep(0.5)  # the trainer stopped: nothing is recorded after the cancel
    assert api.rows("SELECT count(*) FROM trained_models WHERE user_id = %s", me) == [(0,)]
    deleted = await api.client.delete(f"/v1/training/photo-sets/{set_id}", headers=api.headers(me))
    assert deleted.status_code == 204  # no longer in use
