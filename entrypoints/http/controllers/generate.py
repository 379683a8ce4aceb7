"""Generation jobs: submit (holds credits), read, cancel (releases them)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from core.idempotency import request_fingerprint, validate_key
from core.jobs import Job
from core.services.generation import cancel_job, get_job, submit_image
from entrypoints.http.deps import PrincipalDep, RuntimeDep
from entrypoints.http.schemas import AssetItem, ImageRequest, JobResponse, asset_item

_encoder = msgspec.json.Encoder()


async def job_response(runtime: RuntimeDep, job: Job) -> JobResponse:
    c = runtime.container
    ttl = runtime.settings.signed_url_ttl
    assets: list[AssetItem] = []
    if job.asset_ids:
        async with c.uow_factory()() as uow:
            media = await uow.media.list_for_job(job.id)
        storage = c.storage()
        expires_at = c.clock().now() + timedelta(seconds=ttl)
        for asset in media:
            url = await storage.signed_url(asset.storage_key, ttl)
            assets.append(asset_item(asset, url, expires_at))
    return JobResponse.of(job, assets)


class GenerateController(Controller):
    path = "/v1/generate"
    tags = ["generation"]

    @post(
        "/image",
        summary="Generate images from a prompt (holds the price in credits)",
        status_code=202,
    )
    async def generate_image(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ImageRequest],
        principal: PrincipalDep,
        runtime: RuntimeDep,
        idempotency_key: Annotated[
            str,
            HeaderParameter(
                name="Idempotency-Key",
                description="A fresh random key per intended submission; retries reuse it.",
            ),
        ],
    ) -> Response[bytes]:
        key = validate_key(idempotency_key)
        body = await request.body()  # the exact bytes, for the idempotency fingerprint
        payload = data
        c = runtime.container

        async def render(job: Job) -> bytes:
            return _encoder.encode(JobResponse.of(job))

        result = await submit_image(
            c.uow_factory(),
            c.queue(),
            c.clock(),
            c.catalog(),
            user_id=principal.user_id,
            email=principal.email,
            model_id=payload.model,
            params=payload.to_params(),
            idempotency_key=key,
            request_hash=request_fingerprint("POST", "/v1/generate/image", body),
            render=render,
        )
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        if result.job_id is not None:
            headers["Location"] = f"/v1/generate/{result.job_id}"
        return Response(
            result.body,
            status_code=result.status_code,
            media_type="application/json",
            headers=headers,
        )

    @get("/{job_id:uuid}", summary="A job's status, progress and result assets")
    async def get_job(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, runtime: RuntimeDep
    ) -> JobResponse:
        job = await get_job(
            runtime.container.uow_factory(), user_id=principal.user_id, job_id=job_id
        )
        return await job_response(runtime, job)

    @post(
        "/{job_id:uuid}/cancel",
        summary="Cancel an unfinished job and release its credits",
        status_code=200,
    )
    async def cancel(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, runtime: RuntimeDep
    ) -> JobResponse:
        c = runtime.container
        job = await cancel_job(c.uow_factory(), c.clock(), user_id=principal.user_id, job_id=job_id)
        return await job_response(runtime, job)
