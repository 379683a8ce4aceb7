"""Training jobs and trained models (issue #16): start a training (paid, with an
Idempotency-Key, like ``/v1/generate/image``), watch it, and manage the models it
made. Each handler parses, calls one use case of ``Training`` and renders."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, HeaderParameter, JSONBody

from genstudio.core.model.errors import InvalidInput, NotFound
from genstudio.core.model.idempotency import request_fingerprint, validate_key
from genstudio.core.services.generation.submitted import Submitted
from genstudio.entrypoints.http.bodies import strict_json
from genstudio.entrypoints.http.deps import ClockDep, PrincipalDep, TrainingDep
from genstudio.entrypoints.http.training.jobs_schemas import (
    EventItem,
    EventList,
    RenameModelRequest,
    TrainedModelItem,
    TrainedModelList,
    TrainingRequest,
    TrainingResponse,
)

_encoder = msgspec.json.Encoder()
#: core field names -> the names the app sends
_WIRE = {
    "photo_set_id": "photoSetId",
    "trigger_word": "triggerWord",
    "base_model": "baseModel",
    "job_id": "jobId",
}


@contextmanager
def _wire_fields() -> Iterator[None]:
    try:
        yield
    except (InvalidInput, NotFound) as exc:
        if exc.field is not None:
            exc.field = _WIRE.get(exc.field, exc.field)
        raise


class TrainingController(Controller):
    path = "/v1/training"
    tags = ["training"]

    @post("/", summary="Train a personal model (holds the price in credits)", status_code=202)
    async def start(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[TrainingRequest],
        principal: PrincipalDep,
        training: TrainingDep,
        idempotency_key: Annotated[
            str,
            HeaderParameter(
                name="Idempotency-Key",
                description="A fresh random key per intended submission; retries reuse it.",
            ),
        ],
    ) -> Response[bytes]:
        key = validate_key(idempotency_key)
        body = await request.body()
        request_hash = request_fingerprint("POST", "/v1/training", body)
        data = strict_json(body, TrainingRequest)  # "steps": "1000" and 1000.0 are no integers
        with _wire_fields():
            result = await training.submit(
                user_id=principal.user_id,
                email=principal.email,
                model_id=data.model,
                photo_set_id=data.photo_set_id,
                steps=data.steps,
                trigger_word=data.trigger_word,
                base_model=data.base_model,
                name=data.name,
                seed=data.seed,
                idempotency_key=key,
                request_hash=request_hash,
            )
        return _submitted(result)

    @get("/models", summary="My trained models")
    async def models(self, principal: PrincipalDep, training: TrainingDep) -> TrainedModelList:
        views = await training.list_models(user_id=principal.user_id)
        return TrainedModelList(items=[TrainedModelItem.of(v) for v in views])

    @patch("/models/{model_id:uuid}", summary="Rename a trained model")
    async def rename(
        self,
        model_id: FromPath[uuid.UUID],
        data: JSONBody[RenameModelRequest],
        principal: PrincipalDep,
        training: TrainingDep,
    ) -> TrainedModelItem:
        view = await training.rename(user_id=principal.user_id, model_id=model_id, name=data.name)
        return TrainedModelItem.of(view)

    @delete("/models/{model_id:uuid}", summary="Delete a trained model and its files")
    async def remove(
        self, model_id: FromPath[uuid.UUID], principal: PrincipalDep, training: TrainingDep
    ) -> None:
        await training.delete(user_id=principal.user_id, model_id=model_id)

    @get("/{job_id:uuid}", summary="A training: progress, ETA, samples when done")
    async def job(
        self,
        job_id: FromPath[uuid.UUID],
        principal: PrincipalDep,
        training: TrainingDep,
        clock: ClockDep,
    ) -> TrainingResponse:
        with _wire_fields():
            view = await training.view(user_id=principal.user_id, job_id=job_id)
        return TrainingResponse.of(view.job, clock.now(), view)

    @get("/{job_id:uuid}/events", summary="What happened to a training, oldest first")
    async def events(
        self, job_id: FromPath[uuid.UUID], principal: PrincipalDep, training: TrainingDep
    ) -> EventList:
        with _wire_fields():
            events = await training.events(user_id=principal.user_id, job_id=job_id)
        return EventList(
            items=[
                EventItem(id=e.id, kind=e.kind.value, message=e.message, created_at=e.created_at)
                for e in events
            ]
        )


@get("/v1/models/mine", tags=["training"], summary="My trained models (as /v1/training/models)")
async def my_models(principal: PrincipalDep, training: TrainingDep) -> TrainedModelList:
    views = await training.list_models(user_id=principal.user_id)
    return TrainedModelList(items=[TrainedModelItem.of(v) for v in views])


def _submitted(result: Submitted) -> Response[bytes]:
    """202 and the training as it was submitted: the first answer and every replay
    render the same snapshot."""
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    if result.job is None:  # a record from before migration 0012: no training has one
        assert result.response is not None
        return Response(
            result.response.body,
            status_code=result.response.status_code,
            media_type="application/json",
            headers=headers,
        )
    headers["Location"] = f"/v1/training/{result.job.id}"
    body = _encoder.encode(TrainingResponse.of(result.job, result.job.created_at))
    return Response(body, status_code=202, media_type="application/json", headers=headers)
