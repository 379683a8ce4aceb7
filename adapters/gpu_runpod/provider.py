"""The GpuProvider port over Runpod's serverless API (queue-based endpoints).

    POST {base}/{endpoint}/run          {"input": ..., "webhook": ..., "policy": {...}}
    GET  {base}/{endpoint}/status/{id}  IN_QUEUE | IN_PROGRESS | COMPLETED | FAILED |
                                        CANCELLED | TIMED_OUT
    POST {base}/{endpoint}/cancel/{id}
    GET  {base}/{endpoint}/health       {"jobs": {...}, "workers": {...}}

Each provider model runs on its own endpoint (``endpoints``: provider model ->
endpoint id; ``"*"`` serves any model not listed). The provider job id is
``runpod-{endpoint_id}:{runpod_id}``, so a poll or cancel after a restart knows
where to go.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import httpx

from genstudio.adapters.gpu_http import (
    MAX_OUTPUT_BYTES,
    Backoff,
    HttpCaller,
    TokenBucket,
    classify_failure,
    decode_outputs,
    fetch_output,
    output_cap,
    progress_of,
    worker_input,
)
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.core.model.pricing import Catalog
from genstudio.core.model.routing import ProviderHealth
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuRequest,
    Pending,
    ProviderOutput,
    ProviderStatus,
    ProviderUnavailable,
)

log = logging.getLogger("genstudio.gpu.runpod")

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
ANY_MODEL = "*"
UNKNOWN_JOB = JobError(FailureReason.INFRASTRUCTURE, "unknown job")


class RunpodProvider:
    """Runpod serverless endpoints as a GpuProvider.

    ``webhook_url``: where Runpod posts a finished job (our ``/v1/webhooks/runpod``
    with its secret token); the job id is appended as ``job=<id>``. Without one,
    polling alone finds results. The request's ``time_limit`` (else
    ``execution_timeout_ms``) becomes ``policy.executionTimeout``: Runpod stops a job
    running longer (TIMED_OUT).
    ``timeout`` bounds every HTTP call, in seconds. ``rate_limit``: requests a
    second per endpoint, client side (None: unlimited).
    """

    #: Runpod runs the work; it goes on without us
    durable = True
    #: the Runpod worker downloads the inputs from their signed URLs
    inline_inputs = False

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        api_key: str,
        endpoints: Mapping[str, str],
        webhook_url: str | None = None,
        execution_timeout_ms: int = 600_000,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        rate_limit: float | None = 10.0,
        backoff: Backoff = Backoff(),
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        name: str = "runpod",
    ) -> None:
        if not api_key:
            raise ValueError("a Runpod API key is required")
        if not endpoints:
            raise ValueError("at least one Runpod endpoint is required")
        for endpoint_id in endpoints.values():
            if not endpoint_id or "/" in endpoint_id or ":" in endpoint_id:
                raise ValueError(f"not a Runpod endpoint id: {endpoint_id!r}")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.endpoints = dict(endpoints)
        self.webhook_url = webhook_url
        self.execution_timeout_ms = execution_timeout_ms
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.max_output_bytes = max_output_bytes
        # Runpod expects the bare key in the authorization header (its docs also show
        # "Bearer <key>"; both are accepted there).
        self._http = HttpCaller(
            name,
            headers={"authorization": api_key, "accept": "application/json"},
            timeout=timeout,
            client=client,
            backoff=backoff,
            credentials_hint="RUNPOD_API_KEY",
        )
        self._buckets: dict[str, TokenBucket] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- the port -------------------------------------------------------------------------

    async def submit(self, request: GpuRequest) -> str:
        endpoint_id = self.endpoints.get(request.provider_model) or self.endpoints.get(ANY_MODEL)
        if endpoint_id is None:
            raise ProviderUnavailable(
                f"{self.name}: no endpoint serves {request.provider_model!r} (RUNPOD_ENDPOINTS)"
            )
        body: dict[str, Any] = {
            "input": worker_input(request, name=self.name),
            "policy": {"executionTimeout": self._execution_timeout_ms(request)},
        }
        if self.webhook_url is not None:
            body["webhook"] = _with_query(self.webhook_url, job=str(request.job_id))
        response = await self._call("POST", endpoint_id, "run", json=body, what="run")
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: run answered HTTP {response.status_code}: {response.text[:200]}"
            )
        runpod_id = _json(response).get("id")
        if not isinstance(runpod_id, str) or not runpod_id:
            raise ProviderUnavailable(f"{self.name}: run answered without a job id")
        return f"{self.name}-{endpoint_id}:{runpod_id}"

    def _execution_timeout_ms(self, request: GpuRequest) -> int:
        """The attempt's own time limit (its kind's: a training runs for an hour), or
        the configured one for a request that carries none."""
        if request.time_limit is None:
            return self.execution_timeout_ms
        return round(request.time_limit * 1000)

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        parsed = self._parse(provider_job_id)
        if parsed is None:
            return Failed(UNKNOWN_JOB)
        endpoint_id, runpod_id = parsed
        response = await self._call("GET", endpoint_id, f"status/{runpod_id}", what="status")
        if response.status_code in (400, 404, 410):
            return Failed(UNKNOWN_JOB)  # never existed, or expired (results live 30 minutes)
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: status answered HTTP {response.status_code}: {response.text[:200]}"
            )
        return status_of(_json(response))

    async def cancel(self, provider_job_id: str) -> None:
        parsed = self._parse(provider_job_id)
        if parsed is None:
            return
        endpoint_id, runpod_id = parsed
        try:
            await self._call("POST", endpoint_id, f"cancel/{runpod_id}", what="cancel")
        except ProviderUnavailable as exc:  # best effort: the job times out there anyway
            log.warning("runpod cancel failed", extra={"job": provider_job_id, "error": str(exc)})

    async def fetch(self, output: ProviderOutput) -> bytes:
        return await fetch_output(
            self._http.client,
            output,
            name=self.name,
            time_limit=self.timeout,
            max_bytes=output_cap(output, self.max_output_bytes),
        )

    async def health(self) -> ProviderHealth:
        """Every endpoint's /health, summed; unhealthy if any cannot be read."""
        endpoint_ids = list(dict.fromkeys(self.endpoints.values()))
        results = await asyncio.gather(
            *(self._endpoint_health(e) for e in endpoint_ids), return_exceptions=True
        )
        queued = running = 0
        problems: list[str] = []
        details: list[str] = []
        for endpoint_id, result in zip(endpoint_ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, ProviderUnavailable):
                    raise result
                problems.append(str(result))
                continue
            jobs, workers = result
            queued += _count(jobs, "inQueue")
            running += _count(jobs, "inProgress")
            details.append(
                f"{endpoint_id}: workers idle {_count(workers, 'idle')}, "
                f"running {_count(workers, 'running')}, "
                f"throttled {_count(workers, 'throttled')}, "
                f"unhealthy {_count(workers, 'unhealthy')}"
            )
        return ProviderHealth(
            healthy=not problems,
            queued=queued,
            running=running,
            detail="; ".join(problems or details),
        )

    # -- helpers --------------------------------------------------------------------------

    async def _endpoint_health(self, endpoint_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        response = await self._call("GET", endpoint_id, "health", what="health")
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: health of {endpoint_id} answered HTTP {response.status_code}"
            )
        body = _json(response)
        jobs, workers = body.get("jobs"), body.get("workers")
        return (
            jobs if isinstance(jobs, dict) else {},
            workers if isinstance(workers, dict) else {},
        )

    async def _call(
        self, method: str, endpoint_id: str, path: str, *, what: str, json: Any = None
    ) -> httpx.Response:
        return await self._http.call(
            method,
            f"{self.base_url}/{endpoint_id}/{path}",
            what=what,
            json=json,
            bucket=self._bucket(endpoint_id),
        )

    def _bucket(self, endpoint_id: str) -> TokenBucket | None:
        if self.rate_limit is None:
            return None
        bucket = self._buckets.get(endpoint_id)
        if bucket is None:
            bucket = self._buckets[endpoint_id] = TokenBucket(self.rate_limit)
        return bucket

    def _parse(self, provider_job_id: str) -> tuple[str, str] | None:
        prefix = f"{self.name}-"
        if not provider_job_id.startswith(prefix):
            return None
        endpoint_id, sep, runpod_id = provider_job_id[len(prefix) :].partition(":")
        if not sep or not endpoint_id or not runpod_id or "/" in runpod_id:
            return None
        return endpoint_id, runpod_id


def status_of(body: Mapping[str, Any]) -> ProviderStatus:
    """A Runpod /status body (or webhook body) as the port's status."""
    status = body.get("status")
    output = body.get("output")
    if status == "IN_QUEUE":
        return Pending(progress=0, started=False)
    if status in ("IN_PROGRESS", "RUNNING"):
        return Pending(progress=_progress(output), started=True)
    if status == "COMPLETED":
        images = decode_outputs(output)
        return Failed(images) if isinstance(images, JobError) else Completed(images)
    if status == "FAILED":
        error_type = output.get("error_type") if isinstance(output, dict) else None
        return Failed(classify_failure(body.get("error"), error_type))
    if status == "TIMED_OUT":
        return Failed(
            JobError(FailureReason.TIMEOUT, str(body.get("error") or "the Runpod job timed out"))
        )
    if status == "CANCELLED":
        return Cancelled()
    return Failed(JobError(FailureReason.INFRASTRUCTURE, f"unknown Runpod status {status!r}"))


def _progress(output: object) -> int:
    """``runpod.serverless.progress_update(job, {"progress": n})`` (or a training's
    ``{"step": n, "total": m}``) shows up as output."""
    return progress_of(output)


def _count(section: Mapping[str, Any], key: str) -> int:
    value = section.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderUnavailable(
            f"runpod: HTTP {response.status_code} answer is not JSON: {response.text[:200]}"
        ) from None
    if not isinstance(body, dict):
        raise ProviderUnavailable("runpod: the answer is not a JSON object")
    return body


def _with_query(url: str, **params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"


# -- configuration ------------------------------------------------------------------------


def parse_endpoints(spec: str) -> dict[str, str]:
    """``RUNPOD_ENDPOINTS``: ``model=endpoint_id`` pairs separated by commas.

    ``model`` is a catalog model id (``flux-schnell``), a provider model name
    (``black-forest-labs/FLUX.1-schnell``) or ``*`` (every other model).
    """
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        model, sep, endpoint_id = part.partition("=")
        model, endpoint_id = model.strip(), endpoint_id.strip()
        if not sep or not model or not endpoint_id:
            raise ValueError(f"RUNPOD_ENDPOINTS: expected model=endpoint_id, not {part.strip()!r}")
        if model in mapping:
            raise ValueError(f"RUNPOD_ENDPOINTS: {model!r} is listed twice")
        mapping[model] = endpoint_id
    return mapping


def webhook_url_for(public_url: str, secret: str) -> str:
    """Our webhook endpoint with its secret (the job id is added per submission)."""
    return _with_query(f"{public_url.rstrip('/')}/v1/webhooks/runpod", token=secret)


def make_runpod_provider(
    *,
    api_key: str,
    endpoints: str | Mapping[str, str],
    catalog: Catalog | None = None,
    base_url: str = DEFAULT_BASE_URL,
    public_url: str | None = None,
    webhook_secret: str | None = None,
    rate_limit: float | None = 10.0,
    timeout: float = 30.0,
    execution_timeout_ms: int = 600_000,
    client: httpx.AsyncClient | None = None,
) -> RunpodProvider:
    """A RunpodProvider from configuration values (the RUNPOD_* settings).

    Catalog model ids in ``endpoints`` become their provider model names, which is
    what a GpuRequest carries. The webhook is used when both the public URL and
    the secret are known.
    """
    mapping = parse_endpoints(endpoints) if isinstance(endpoints, str) else dict(endpoints)
    by_provider_model: dict[str, str] = {}
    known = {m.id: m.provider_model for m in catalog.all()} if catalog is not None else {}
    for model, endpoint_id in mapping.items():
        by_provider_model[known.get(model, model)] = endpoint_id
    webhook = webhook_url_for(public_url, webhook_secret) if public_url and webhook_secret else None
    return RunpodProvider(
        base_url=base_url,
        api_key=api_key,
        endpoints=by_provider_model,
        webhook_url=webhook,
        execution_timeout_ms=execution_timeout_ms,
        timeout=timeout,
        client=client,
        rate_limit=rate_limit,
    )
