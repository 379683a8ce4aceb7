"""A Runpod serverless stand-in on loopback: /v2/{endpoint}/run, /status/{id},
/cancel/{id}, /health, with webhooks, the worker contract of docs/providers.md, and
the knobs of ``tests.standins.gpu_jobs``.

    with RunpodStandin(api_key="k", endpoints={"ep1"}) as runpod:
        provider = RunpodProvider(base_url=runpod.base_url, api_key="k", endpoints={...})
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from tests.standins.gpu_jobs import GpuStandinBase, StandinJob

INFRA_ERROR = json.dumps(
    {
        "error_type": "<class 'torch.OutOfMemoryError'>",
        "error_message": "CUDA out of memory. Tried to allocate 2.00 GiB",
        "error_traceback": "Traceback (most recent call last): ...",
        "hostname": "standin",
        "worker_id": "standin-worker",
        "runpod_version": "1.7.0",
    }
)
CONTENT_ERROR = "CONTENT_POLICY: the prompt was refused by the safety checker"


class RunpodStandin(GpuStandinBase):
    def __init__(self, *, api_key: str = "runpod-test-key", endpoints: set[str] | None = None):
        super().__init__()
        self.api_key = api_key
        self.endpoints = endpoints or {"ep-flux", "ep-sdxl"}
        self.run_bodies: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v2"

    # -- Runpod's answers -----------------------------------------------------------------

    def status_body(self, job: StandinJob) -> dict[str, Any]:
        phase, progress = job.phase(time.monotonic())
        body: dict[str, Any] = {"id": job.id, "delayTime": 12, "executionTime": 0}
        if phase == "cancelled":
            body["status"] = "CANCELLED"
        elif phase == "queued":
            body["status"] = "IN_QUEUE"
        elif phase == "running":
            body["status"] = "IN_PROGRESS"
            body["output"] = job.running(progress)
        elif job.fail_with == "content":
            body |= {"status": "FAILED", "error": CONTENT_ERROR}
        elif job.fail_with == "infrastructure":
            body |= {"status": "FAILED", "error": INFRA_ERROR}
        elif job.fail_with == "timeout":
            body |= {"status": "TIMED_OUT", "error": "execution timeout exceeded"}
        else:
            body |= {
                "status": "COMPLETED",
                "executionTime": int(job.job_seconds * 1000),
                "output": job.output_json(self.root_url),
            }
        return body

    async def _deliver_webhook(self, job: StandinJob) -> None:
        wait = job.finishes_in(time.monotonic())
        if wait is None or job.webhook is None:
            return
        await asyncio.sleep(wait + 0.01)
        if job.cancelled or self.knobs.drop_webhooks:
            return
        body = self.status_body(job)
        self.webhooks_sent.append(body)
        # Runpod retries a failed delivery a few times; here a failure is simply lost
        async with httpx.AsyncClient(timeout=5) as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(job.webhook, json=body)

    # -- the app --------------------------------------------------------------------------

    def app(self) -> Litestar:
        standin = self

        async def guard(
            request: Request[Any, Any, Any], endpoint: FromPath[str]
        ) -> Response[Any] | None:
            auth = request.headers.get("authorization", "")
            if auth.removeprefix("Bearer ").strip() != standin.api_key:
                return _answer(request, 401, {"error": "Unauthorized"})
            forced = await standin.gate()
            if forced is not None:
                status, headers = forced
                return _answer(request, status, {"error": f"standin {status}"}, headers)
            if endpoint not in standin.endpoints:
                return _answer(request, 404, {"error": "endpoint not found"})
            return None

        def _answer(
            request: Request[Any, Any, Any],
            status: int,
            body: Any,
            headers: dict[str, str] | None = None,
        ) -> Response[Any]:
            standin.record(request.method, request.url.path, status)
            return Response(body, status_code=status, headers=headers)

        @post("/v2/{endpoint:str}/run", status_code=200)
        async def run(request: Request[Any, Any, Any], endpoint: FromPath[str]) -> Response[Any]:
            if (refused := await guard(request, endpoint)) is not None:
                return refused
            body = await request.json()
            if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
                return _answer(request, 400, {"error": "input is required"})
            standin.run_bodies.append(body)
            job_id = standin.submit(body)
            return _answer(request, 200, {"id": job_id, "status": "IN_QUEUE"})

        @get("/v2/{endpoint:str}/status/{job_id:str}")
        async def status(
            request: Request[Any, Any, Any], endpoint: FromPath[str], job_id: FromPath[str]
        ) -> Response[Any]:
            if (refused := await guard(request, endpoint)) is not None:
                return refused
            found = standin.status_of(job_id)
            if found is None:
                return _answer(request, 404, {"error": "request does not exist"})
            return _answer(request, 200, found)

        @post("/v2/{endpoint:str}/cancel/{job_id:str}", status_code=200)
        async def cancel(
            request: Request[Any, Any, Any], endpoint: FromPath[str], job_id: FromPath[str]
        ) -> Response[Any]:
            if (refused := await guard(request, endpoint)) is not None:
                return refused
            found = standin.cancel_job(job_id)
            if found is None:
                return _answer(request, 404, {"error": "request does not exist"})
            return _answer(request, 200, {"id": job_id, "status": found["status"]})

        @get("/v2/{endpoint:str}/health")
        async def health(request: Request[Any, Any, Any], endpoint: FromPath[str]) -> Response[Any]:
            if (refused := await guard(request, endpoint)) is not None:
                return refused
            jobs = standin.job_counts()
            return _answer(
                request,
                200,
                {
                    "jobs": jobs,
                    "workers": {
                        "idle": 1,
                        "initializing": 0,
                        "ready": 1,
                        "running": min(jobs["inProgress"], 3),
                        "throttled": 0,
                        "unhealthy": 0,
                    },
                },
            )

        return Litestar([run, status, cancel, health, *standin.more_routes()], debug=False)

    # -- what runs the jobs (a subclass may hand them to a real worker) --------------------

    def submit(self, body: dict[str, Any]) -> str:
        """Queue the /run body's job; its id."""
        job = self.new_job("sa-", body["input"], body.get("webhook"))
        if job.webhook:
            task = asyncio.get_running_loop().create_task(self._deliver_webhook(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return job.id

    def status_of(self, job_id: str) -> dict[str, Any] | None:
        """The /status body of a job; None for an unknown one."""
        job = self.jobs.get(job_id)
        return None if job is None else self.status_body(job)

    def cancel_job(self, job_id: str) -> dict[str, Any] | None:
        """Cancel a job still queued or running; its /status body after (None: unknown)."""
        job = self.jobs.get(job_id)
        if job is None:
            return None
        if job.phase(time.monotonic())[0] in ("queued", "running"):
            job.cancelled = True
        return self.status_body(job)

    def job_counts(self) -> dict[str, int]:
        """The ``jobs`` object of /health."""
        queued, in_progress = self.counts()
        done = [j for j in self.jobs.values() if j.phase(time.monotonic())[0] == "done"]
        return {
            "completed": sum(1 for j in done if not j.fail_with),
            "failed": sum(1 for j in done if j.fail_with),
            "inProgress": in_progress,
            "inQueue": queued,
            "retried": 0,
        }

    def more_routes(self) -> list[Any]:
        """Routes besides Runpod's API: the output files served as pre-signed URLs."""
        return [self.files_route()]
