"""genstudio's ``GpuProvider`` port over fal's queue API (https://queue.fal.run), as fal
documents it (docs.fal.ai: "Asynchronous inference" and the Queue API reference):

    POST {queue}/{model_id}                       the model's input -> {request_id, ...}
    GET  {queue}/{owner}/{app}/requests/{id}/status    IN_QUEUE | IN_PROGRESS | COMPLETED
    GET  {queue}/{owner}/{app}/requests/{id}           the result (or its error)
    PUT  {queue}/{owner}/{app}/requests/{id}/cancel

with ``Authorization: Key <FAL_KEY>``. A model id may carry a path after owner/app
(``fal-ai/flux/schnell``): submissions use it, the status, result and cancel URLs do
not. Those URLs are built here, as fal's own clients build them from a request id,
because another worker may poll a job this one submitted: the provider job id
(``fal-{owner}/{app}/{request_id}``) is all they share.

Text-to-image jobs only (fal's Flux input: ``prompt``, ``image_size``, ``num_images``,
``seed``, ``output_format=png``, the safety checker on): edits, videos, trainings and
LoRA images are refused at submission as ``ProviderUnavailable``, so the router hands
them to another provider.

How answers map:
- result 200: the images (by URL, downloaded without the key; or data URIs, inline);
  ``has_nsfw_concepts`` flagging any: Failed(content)
- result 422 (a model error: ``content_policy_violation``, a refused field):
  Failed(content), never retried
- result 504 ``request_timeout``/``startup_timeout``: Failed(timeout); another 5xx
  with fal's ``error_type`` or request id (fal retried it already, up to 10 times):
  Failed(infrastructure); a 5xx without them is the ingress failing: ProviderUnavailable
  and the next poll asks again
- result 499: Cancelled (what a cancelled request reads as; see the stand-in's notes)
- 401/403, 429 past the backoff, timeouts, unreachable: ProviderUnavailable
- an unknown request (404): Failed(infrastructure)

fal has no health endpoint: ``health`` asks the status of a request that does not
exist (fal answering, with our key accepted, is healthy) and counts the requests this
process last saw queued and running.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx
from genstudio.adapters.gpu_http import (
    MAX_OUTPUT_BYTES,
    Backoff,
    HttpCaller,
    TokenBucket,
    fetch_output,
    output_cap,
)
from genstudio.core.model.job_params import ImageParams
from genstudio.core.model.jobs import FailureReason, JobError
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

log = logging.getLogger("genstudio_fal")

DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_MODEL = "fal-ai/flux/schnell"
UNKNOWN = JobError(FailureReason.INFRASTRUCTURE, "fal does not know this request")
#: request errors that say the request ran out of time (docs: "Request Error Types")
TIMEOUTS = frozenset({"request_timeout", "startup_timeout"})


class FalProvider:
    """fal as a GpuProvider. ``models`` maps a job's provider model name (or ``*``) to a
    fal model id; ``timeout`` bounds each HTTP call; ``rate_limit``: calls a second,
    client side (None: unlimited)."""

    #: fal runs the work; it goes on without us
    durable = True
    #: fal's runners download inputs themselves (none are sent: text-to-image only)
    inline_inputs = False

    def __init__(
        self,
        *,
        key: str,
        models: Mapping[str, str] | None = None,
        queue_url: str = DEFAULT_QUEUE_URL,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        rate_limit: float | None = None,
        backoff: Backoff = Backoff(),
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        name: str = "fal",
    ) -> None:
        if not key:
            raise ValueError("a fal API key is required")
        self.models = dict(models or {"*": DEFAULT_MODEL})
        for model in self.models.values():
            _app_of(model)  # refuses a model id without owner/app
        self.name = name
        self.queue_url = queue_url.rstrip("/")
        self.timeout = timeout
        self.max_output_bytes = max_output_bytes
        self._headers = {"Authorization": f"Key {key}", "Accept": "application/json"}
        # the key goes per request, never on the client: output downloads share it
        self._http = HttpCaller(
            name,
            headers=self._headers,
            timeout=timeout,
            client=client,
            backoff=backoff,
            credentials_hint="FAL_KEY",
        )
        self._bucket = TokenBucket(rate_limit) if rate_limit is not None else None
        #: what this process last saw of each request it follows (health's counts)
        self._seen: dict[str, str] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- GpuProvider -----------------------------------------------------------------------

    async def submit(self, request: GpuRequest) -> str:
        params = request.params
        if not isinstance(params, ImageParams):
            raise ProviderUnavailable(
                f"{self.name}: renders text-to-image jobs only, not {type(params).__name__}"
            )
        if params.lora_key is not None:
            raise ProviderUnavailable(f"{self.name}: images with a trained LoRA are not mapped")
        model = self.models.get(request.provider_model) or self.models.get("*")
        if model is None:
            raise ProviderUnavailable(
                f"{self.name}: no fal model serves {request.provider_model!r} (FAL_MODELS)"
            )
        response = await self._http.call(
            "POST",
            f"{self.queue_url}/{model}",
            what="submit",
            json=fal_input(params),
            bucket=self._bucket,
        )
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: submit answered HTTP {response.status_code}: {response.text[:200]}"
            )
        request_id = _json(response, self.name).get("request_id")
        if not isinstance(request_id, str) or not request_id or "/" in request_id:
            raise ProviderUnavailable(f"{self.name}: submit answered without a request_id")
        provider_job_id = f"{self.name}-{_app_of(model)}/{request_id}"
        self._seen[provider_job_id] = "IN_QUEUE"
        return provider_job_id

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        base = self._request_url(provider_job_id)
        if base is None:
            return Failed(UNKNOWN)
        response = await self._http.call(
            "GET", f"{base}/status", what="status", bucket=self._bucket
        )
        if response.status_code == 404:
            self._seen.pop(provider_job_id, None)
            return Failed(UNKNOWN)
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: status answered HTTP {response.status_code}: {response.text[:200]}"
            )
        status = _json(response, self.name).get("status")
        if status in ("IN_QUEUE", "IN_PROGRESS"):
            self._seen[provider_job_id] = status
            return Pending(progress=0, started=status == "IN_PROGRESS")
        self._seen.pop(provider_job_id, None)
        if status == "COMPLETED":
            return await self._outcome(base)
        return Failed(JobError(FailureReason.INFRASTRUCTURE, f"fal status {status!r}"))

    async def cancel(self, provider_job_id: str) -> None:
        """Best effort: 202 asked, 400 already completed, 404 unknown are all fine."""
        base = self._request_url(provider_job_id)
        self._seen.pop(provider_job_id, None)
        if base is None:
            return
        try:
            await self._http.call("PUT", f"{base}/cancel", what="cancel", bucket=self._bucket)
        except ProviderUnavailable as exc:
            log.warning("fal cancel failed", extra={"job": provider_job_id, "error": str(exc)})

    async def fetch(self, output: ProviderOutput) -> bytes:
        return await fetch_output(
            self._http.client,
            output,
            name=self.name,
            time_limit=self.timeout,
            max_bytes=output_cap(output, self.max_output_bytes),
        )

    async def health(self) -> ProviderHealth:
        """fal answering with our key accepted (a status read of no request); never raises."""
        app = _app_of(self.models.get("*") or next(iter(self.models.values())))
        probe = f"{self.queue_url}/{app}/requests/{uuid.UUID(int=0)}/status"
        try:
            await self._http.call("GET", probe, what="health")
        except ProviderUnavailable as exc:
            return ProviderHealth(healthy=False, detail=str(exc))
        seen = list(self._seen.values())
        return ProviderHealth(
            healthy=True,
            queued=seen.count("IN_QUEUE"),
            running=seen.count("IN_PROGRESS"),
            detail="fal answers; counts are this process's requests",
        )

    # -- helpers ---------------------------------------------------------------------------

    def _request_url(self, provider_job_id: str) -> str | None:
        prefix = f"{self.name}-"
        parts = provider_job_id.removeprefix(prefix).split("/")
        if not provider_job_id.startswith(prefix) or len(parts) != 3 or not all(parts):
            return None
        owner, app, request_id = (quote(p, safe="") for p in parts)
        return f"{self.queue_url}/{owner}/{app}/requests/{request_id}"

    async def _outcome(self, base: str) -> ProviderStatus:
        """The result of a COMPLETED request."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.client.get(
                    base, headers=self._headers, timeout=self.timeout
                )
        except (TimeoutError, httpx.TimeoutException):
            raise ProviderUnavailable(
                f"{self.name}: the result timed out after {self.timeout:g}s"
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(
                f"{self.name}: the result failed: {type(exc).__name__}: {exc}"
            ) from exc
        code = response.status_code
        if code == 200:
            return _completed(_json(response, self.name))
        if code == 400:  # "still in progress": the status ran ahead of the result
            return Pending(progress=0, started=True)
        if code == 404:
            return Failed(UNKNOWN)
        if code == 499:
            return Cancelled()
        if code == 422:
            return Failed(JobError(FailureReason.CONTENT, f"fal refused it: {_detail(response)}"))
        if code in (401, 403, 408, 429):
            raise ProviderUnavailable(f"{self.name}: the result answered HTTP {code}")
        error_type = response.headers.get("x-fal-error-type") or _error_type(response)
        if code >= 500 and not (error_type or "x-fal-request-id" in response.headers):
            raise ProviderUnavailable(  # the ingress, not fal's answer: ask again
                f"{self.name}: the result answered HTTP {code}: {response.text[:200]}"
            )
        reason = FailureReason.TIMEOUT if error_type in TIMEOUTS else FailureReason.INFRASTRUCTURE
        what = f" ({error_type})" if error_type else ""
        return Failed(JobError(reason, f"fal: HTTP {code}{what}: {_detail(response)}"))


def fal_input(params: ImageParams) -> dict[str, Any]:
    """The input of fal's text-to-image (Flux) endpoints for an image job."""
    body: dict[str, Any] = {
        "prompt": params.prompt,
        "image_size": {"width": params.width, "height": params.height},
        "num_images": params.count,
        "output_format": "png",
        "enable_safety_checker": True,
    }
    if params.seed is not None:
        body["seed"] = params.seed
    if params.negative_prompt:
        body["negative_prompt"] = params.negative_prompt  # the endpoints that take one
    return body


def _completed(body: dict[str, Any]) -> ProviderStatus:
    images = body.get("images")
    if not isinstance(images, list) or not images:
        return Failed(JobError(FailureReason.INFRASTRUCTURE, "fal's result has no images"))
    flagged = body.get("has_nsfw_concepts")
    if isinstance(flagged, list) and any(f is True for f in flagged):
        return Failed(
            JobError(
                FailureReason.CONTENT,
                f"fal's safety checker flagged {sum(f is True for f in flagged)} of the images",
            )
        )
    outputs = []
    for image in images:
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            return Failed(JobError(FailureReason.INFRASTRUCTURE, "a fal image without a URL"))
        content_type = str(image.get("content_type") or "image/png")
        if url.startswith("data:"):  # sync_mode: the file itself
            try:
                data = base64.b64decode(url.partition(",")[2], validate=True)
            except (ValueError, binascii.Error):
                return Failed(JobError(FailureReason.INFRASTRUCTURE, "a broken fal data URI"))
            outputs.append(ProviderOutput(content_type=content_type, data=data))
        else:
            outputs.append(ProviderOutput(content_type=content_type, url=url))
    return Completed(tuple(outputs))


def _app_of(model: str) -> str:
    """owner/app of a fal model id (``fal-ai/flux/schnell`` -> ``fal-ai/flux``)."""
    parts = model.strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise ValueError(f"a fal model id reads owner/app[/path], not {model!r}")
    return f"{parts[0]}/{parts[1]}"


def _json(response: httpx.Response, name: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ProviderUnavailable(f"{name}: HTTP {response.status_code} is not JSON") from None
    if not isinstance(body, dict):
        raise ProviderUnavailable(f"{name}: the answer is not a JSON object")
    return body


def _error_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    value = body.get("error_type") if isinstance(body, dict) else None
    return value if isinstance(value, str) and value else None


def _detail(response: httpx.Response) -> str:
    """fal's ``detail``: a string (request errors) or a list of errors (model errors)."""
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        return response.text[:200]
    if isinstance(detail, list):
        return "; ".join(
            f"{e.get('msg', '')} ({e.get('type', '')}"
            + (f" at {'.'.join(map(str, e['loc']))}" if isinstance(e.get("loc"), list) else "")
            + ")"
            for e in detail
            if isinstance(e, dict)
        )[:300]
    return str(detail)[:300]
