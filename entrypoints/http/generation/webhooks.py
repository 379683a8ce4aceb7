"""Runpod's completion webhook: a hint that a job may be done, never a result.

Runpod does not sign its webhooks, so the URL we hand it at submission carries a
per-deployment secret (``?token=RUNPOD_WEBHOOK_SECRET&job=<our job id>``). The body
is not trusted or even read: the handler only checks the token, finds the job, and
enqueues it, so a worker re-reads the job's ``/status`` from Runpod with our API key
and takes it from there. A forged or replayed call can at most wake a worker early.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.params import QueryParameter

from core.services.generation.jobs import wake
from entrypoints.http.deps import RuntimeDep
from entrypoints.http.problems import problem_response

log = logging.getLogger("genstudio.webhooks.runpod")


class WebhookAck(msgspec.Struct):
    accepted: bool
    detail: str = ""


def token_matches(given: str | None, secret: str | None) -> bool:
    """Constant-time: the time taken says nothing about how much of the token was right."""
    if not given or not secret:
        return False
    return hmac.compare_digest(given.encode(), secret.encode())


@post(
    "/v1/webhooks/runpod",
    status_code=200,
    tags=["webhooks"],
    summary="Runpod job finished (a hint: the worker re-reads /status)",
    security=[{}],  # no bearer token: the secret is in the query
)
async def runpod_webhook(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    token: Annotated[
        str | None, QueryParameter(name="token", description="the deployment's secret")
    ] = None,
    job: Annotated[str | None, QueryParameter(name="job", description="our job id")] = None,
) -> Response[Any]:
    if not token_matches(token, runtime.settings.runpod_webhook_secret):
        return problem_response(
            401,
            "Unauthorized",
            "missing or wrong webhook token",
            code="unauthorized",
            request=request,
            field="token",
        )
    try:
        job_id = uuid.UUID(job or "")
    except ValueError:
        return problem_response(
            422,
            "Invalid input",
            "the job query parameter must be a job id",
            code="invalid_input",
            request=request,
            field="job",
        )
    c = runtime.container
    async with c.uow_factory()() as uow:
        found = await uow.jobs.get(job_id)
    if found is None:
        return problem_response(
            404, "Not found", f"no job {job_id}", code="not_found", request=request, field="job"
        )
    if found.status.terminal:
        return Response(WebhookAck(accepted=False, detail=f"the job is {found.status.value}"))
    await wake(c.queue(), found)  # a queue that is down: the reconciler wakes it instead
    log.info("runpod webhook", extra={"job_id": str(found.id)})
    return Response(WebhookAck(accepted=True))
