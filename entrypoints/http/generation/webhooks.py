"""Runpod's completion webhook: a hint that a job may be done, never a result.

Runpod does not sign its webhooks, so the URL we hand it at submission carries a
per-deployment secret (``?token=RUNPOD_WEBHOOK_SECRET&job=<our job id>``). The body
is not trusted or even read: the handler only checks the token and hands the job id
to ``wake_on_notice``, which finds the job and wakes a worker for it; the worker
re-reads the job's ``/status`` from Runpod with our API key and takes it from there.
A forged or replayed call can at most wake a worker early.
"""

from __future__ import annotations

import hmac
import logging
import uuid
from typing import Annotated

import msgspec
from litestar import post
from litestar.params import QueryParameter

from genstudio.core.model.errors import InvalidInput, Unauthorized
from genstudio.core.services.generation.jobs import wake_on_notice
from genstudio.entrypoints.http.deps import QueueDep, SettingsDep, UowFactoryDep

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
    settings: SettingsDep,
    uow_factory: UowFactoryDep,
    queue: QueueDep,
    token: Annotated[
        str | None, QueryParameter(name="token", description="the deployment's secret")
    ] = None,
    job: Annotated[str | None, QueryParameter(name="job", description="our job id")] = None,
) -> WebhookAck:
    if not token_matches(token, settings.runpod.webhook_secret):
        raise Unauthorized("missing or wrong webhook token", field="token")
    try:
        job_id = uuid.UUID(job or "")
    except ValueError:
        raise InvalidInput("the job query parameter must be a job id", field="job") from None
    found = await wake_on_notice(uow_factory, queue, job_id=job_id)
    if found.status.terminal:
        return WebhookAck(accepted=False, detail=f"the job is {found.status.value}")
    log.info("runpod webhook", extra={"job_id": str(found.id)})
    return WebhookAck(accepted=True)
