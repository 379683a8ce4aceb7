"""The GpuProvider port over our Modal app's web endpoints (docs/providers.md).

    POST {base}/submit            worker input -> {"call_id": "fc-..."}  (spawns the call)
    GET  {base}/result/{call_id}  202 pending {"progress", "started"}
                                  200 {"status": "completed", "output": {"images": [...]}}
                                  200 {"status": "failed", "error", "error_type"}
                                  200 {"status": "cancelled"}
                                  404 / 410: unknown or expired
    POST {base}/cancel/{call_id}
    GET  {base}/health            {"healthy", "queued", "running", "detail"}

Every request carries Modal's proxy auth headers ``Modal-Key`` and ``Modal-Secret``
(a proxy auth token of the workspace); Modal answers 401 without them. The provider
job id is ``modal-{call_id}``.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

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

log = logging.getLogger("genstudio.gpu.modal")

UNKNOWN_JOB = JobError(FailureReason.INFRASTRUCTURE, "unknown job")
EXPIRED_JOB = JobError(FailureReason.INFRASTRUCTURE, "the job's result expired at Modal")


class ModalProvider:
    """Our Modal app as a GpuProvider. ``timeout`` bounds every HTTP call (seconds);
    ``rate_limit``: requests a second, client side (None: unlimited)."""

    #: Modal runs the work; it goes on without us
    durable = True
    #: Modal's worker downloads the inputs from their signed URLs
    inline_inputs = False

    def __init__(
        self,
        *,
        base_url: str,
        token_id: str,
        token_secret: str,
        timeout: float = 30.0,
        client: httpx.AsyncClient | None = None,
        rate_limit: float | None = None,
        backoff: Backoff = Backoff(),
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        name: str = "modal",
    ) -> None:
        if not base_url:
            raise ValueError("the Modal app's base URL is required")
        if not token_id or not token_secret:
            raise ValueError("a Modal proxy auth token id and secret are required")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_output_bytes = max_output_bytes
        self._http = HttpCaller(
            name,
            headers={
                "Modal-Key": token_id,
                "Modal-Secret": token_secret,
                "accept": "application/json",
            },
            timeout=timeout,
            client=client,
            backoff=backoff,
            credentials_hint="MODAL_TOKEN_ID and MODAL_TOKEN_SECRET",
        )
        self._bucket = TokenBucket(rate_limit) if rate_limit is not None else None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def submit(self, request: GpuRequest) -> str:
        response = await self._call(
            "POST", "submit", what="submit", json=worker_input(request, name=self.name)
        )
        if response.status_code >= 300:
            raise ProviderUnavailable(
                f"{self.name}: submit answered HTTP {response.status_code}: {response.text[:200]}"
            )
        call_id = self._json(response).get("call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ProviderUnavailable(f"{self.name}: submit answered without a call_id")
        return f"{self.name}-{call_id}"

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        call_id = self._call_id(provider_job_id)
        if call_id is None:
            return Failed(UNKNOWN_JOB)
        response = await self._call("GET", f"result/{quote(call_id, safe='')}", what="result")
        code = response.status_code
        if code == 404:
            return Failed(UNKNOWN_JOB)
        if code == 410:
            return Failed(EXPIRED_JOB)
        if code == 202:
            body = self._json(response) if response.content else {}
            return Pending(progress=progress_of(body), started=_started(body))
        if code != 200:
            raise ProviderUnavailable(
                f"{self.name}: result answered HTTP {code}: {response.text[:200]}"
            )
        body = self._json(response)
        status = body.get("status")
        if status == "completed":
            images = decode_outputs(body.get("output"))
            return Failed(images) if isinstance(images, JobError) else Completed(images)
        if status == "failed":
            return Failed(classify_failure(body.get("error"), body.get("error_type")))
        if status == "cancelled":
            return Cancelled()
        if status == "pending":  # a 200 that says pending: take it at its word
            return Pending(progress=progress_of(body), started=_started(body))
        return Failed(JobError(FailureReason.INFRASTRUCTURE, f"unknown Modal status {status!r}"))

    async def cancel(self, provider_job_id: str) -> None:
        call_id = self._call_id(provider_job_id)
        if call_id is None:
            return
        try:
            await self._call("POST", f"cancel/{quote(call_id, safe='')}", what="cancel")
        except ProviderUnavailable as exc:  # best effort
            log.warning("modal cancel failed", extra={"job": provider_job_id, "error": str(exc)})

    async def fetch(self, output: ProviderOutput) -> bytes:
        return await fetch_output(
            self._http.client,
            output,
            name=self.name,
            time_limit=self.timeout,
            max_bytes=output_cap(output, self.max_output_bytes),
        )

    async def health(self) -> ProviderHealth:
        """The app's /health; unhealthy (never raises) when it cannot be read."""
        try:
            response = await self._call("GET", "health", what="health")
            if response.status_code != 200:
                raise ProviderUnavailable(
                    f"{self.name}: health answered HTTP {response.status_code}"
                )
            body = self._json(response)
        except ProviderUnavailable as exc:
            return ProviderHealth(healthy=False, detail=str(exc))
        return ProviderHealth(
            healthy=body.get("healthy") is True,
            queued=_count(body.get("queued")),
            running=_count(body.get("running")),
            detail=str(body.get("detail") or ""),
        )

    async def _call(self, method: str, path: str, *, what: str, json: Any = None) -> httpx.Response:
        return await self._http.call(
            method, f"{self.base_url}/{path}", what=what, json=json, bucket=self._bucket
        )

    def _call_id(self, provider_job_id: str) -> str | None:
        prefix = f"{self.name}-"
        if not provider_job_id.startswith(prefix) or len(provider_job_id) == len(prefix):
            return None
        return provider_job_id[len(prefix) :]

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnavailable(
                f"{self.name}: HTTP {response.status_code} answer is not JSON: "
                f"{response.text[:200]}"
            ) from None
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"{self.name}: the answer is not a JSON object")
        return body


def _started(body: dict[str, Any]) -> bool:
    return body.get("started") is True or progress_of(body) > 0


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def make_modal_provider(
    *,
    base_url: str,
    token_id: str,
    token_secret: str,
    timeout: float = 30.0,
    client: httpx.AsyncClient | None = None,
) -> ModalProvider:
    """A ModalProvider from configuration values (the MODAL_* settings)."""
    return ModalProvider(
        base_url=base_url,
        token_id=token_id,
        token_secret=token_secret,
        timeout=timeout,
        client=client,
    )
