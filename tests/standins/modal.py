"""A stand-in for our Modal app's web endpoints (docs/providers.md) on loopback:
/submit, /result/{call_id}, /cancel/{call_id}, /health behind ``Modal-Key`` /
``Modal-Secret`` proxy auth, with the knobs of ``tests.standins.gpu_jobs``.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath

from tests.standins.gpu_jobs import GpuStandinBase, StandinJob


class ModalStandin(GpuStandinBase):
    def __init__(self, *, token_id: str = "wk-test", token_secret: str = "ws-test") -> None:
        super().__init__()
        self.token_id = token_id
        self.token_secret = token_secret
        self.submit_bodies: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return self.root_url

    def result(self, job: StandinJob) -> tuple[int, dict[str, Any]]:
        phase, progress = job.phase(time.monotonic())
        if phase == "cancelled":
            return 200, {"status": "cancelled"}
        if phase in ("queued", "running"):
            return 202, {
                "status": "pending",
                **job.running(progress),
                "started": phase == "running",
            }
        if self.knobs.expire_results:
            return 410, {"error": "the result of this call has expired"}
        if job.fail_with == "content":
            return 200, {
                "status": "failed",
                "error": "the prompt was refused by the safety checker",
                "error_type": "content",
            }
        if job.fail_with == "infrastructure":
            return 200, {
                "status": "failed",
                "error": "CUDA out of memory",
                "error_type": "infrastructure",
            }
        if job.fail_with == "timeout":
            return 200, {
                "status": "failed",
                "error": "the function ran past its timeout",
                "error_type": "timeout",
            }
        return 200, {"status": "completed", "output": job.output_json(self.root_url)}

    def app(self) -> Litestar:
        standin = self

        def answer(
            request: Request[Any, Any, Any],
            status: int,
            body: Any,
            headers: dict[str, str] | None = None,
        ) -> Response[Any]:
            standin.record(request.method, request.url.path, status)
            return Response(body, status_code=status, headers=headers)

        async def guard(request: Request[Any, Any, Any]) -> Response[Any] | None:
            key = request.headers.get("modal-key")
            secret = request.headers.get("modal-secret")
            if key != standin.token_id or secret != standin.token_secret:
                return answer(request, 401, {"detail": "missing or invalid proxy auth token"})
            forced = await standin.gate()
            if forced is not None:
                status, headers = forced
                return answer(request, status, {"detail": f"standin {status}"}, headers)
            return None

        @post("/submit", status_code=200)
        async def submit(request: Request[Any, Any, Any]) -> Response[Any]:
            if (refused := await guard(request)) is not None:
                return refused
            body = await request.json()
            if not isinstance(body, dict):
                return answer(request, 422, {"detail": "the body is not an object"})
            if body.get("kind") == "training":
                photos = [i for i in body.get("inputs") or [] if i.get("name") == "photo"]
                if not photos or not isinstance(body.get("steps"), int):
                    return answer(request, 422, {"detail": "a training needs photos and steps"})
            elif not body.get("prompt"):
                return answer(request, 422, {"detail": "prompt is required"})
            standin.submit_bodies.append(body)
            job = standin.new_job("fc-", body, None)
            return answer(request, 200, {"call_id": job.id})

        @get("/result/{call_id:str}")
        async def result(request: Request[Any, Any, Any], call_id: FromPath[str]) -> Response[Any]:
            if (refused := await guard(request)) is not None:
                return refused
            job = standin.jobs.get(call_id)
            if job is None:
                return answer(request, 404, {"detail": "no such call"})
            status, body = standin.result(job)
            return answer(request, status, body)

        @post("/cancel/{call_id:str}", status_code=200)
        async def cancel(request: Request[Any, Any, Any], call_id: FromPath[str]) -> Response[Any]:
            if (refused := await guard(request)) is not None:
                return refused
            job = standin.jobs.get(call_id)
            if job is None:
                return answer(request, 404, {"detail": "no such call"})
            running = job.phase(time.monotonic())[0] in ("queued", "running")
            if running:
                job.cancelled = True
            return answer(request, 200, {"cancelled": running})

        @get("/health")
        async def health(request: Request[Any, Any, Any]) -> Response[Any]:
            if (refused := await guard(request)) is not None:
                return refused
            queued, running = standin.counts()
            return answer(
                request,
                200,
                {"healthy": True, "queued": queued, "running": running, "detail": "standin"},
            )

        return Litestar([submit, result, cancel, health, standin.files_route()], debug=False)
