"""Runpod's platform on loopback, with our real Runpod worker behind it.

Runpod's public API (/v2/{endpoint}/run, /status, /cancel, /health, webhooks, auth,
the knobs) is ``RunpodStandin``'s; the jobs, instead of being acted out, are handed to
``python -m gpu_worker.runpod_handler`` running as on Runpod: ``runpod.serverless.start``
in its production loop, which takes jobs from the job-take URL it is given
(``RUNPOD_WEBHOOK_GET_JOB``), posts ``progress_update``s and results to the job-done
URL (``RUNPOD_WEBHOOK_POST_OUTPUT``) and long-polls the job-stop channel for
cancellations. Those worker-facing routes are served here, as runpod-python 1.x
speaks them (``runpod/serverless/modules/rp_job.py``, ``rp_http.py``, ``rp_scale.py``).

Why not runpod-python's own test server (``--rp_serve_api``): its /run only stores a
job, and its ``POST /status/{id}`` runs the handler inside that request and then
forgets the job; it has no cancel, health, endpoints or auth, and progress updates
go nowhere. The adapter's /run + GET /status polling cannot run against it
(``tests/contract/test_gpu_worker.py`` still runs the handler there once, via /runsync).

One worker serves every endpoint. ``job_seconds``, ``stuck``, ``fail_with`` content or
infrastructure and ``output`` reach the worker as its controls file (written at each
/run); ``queue_seconds`` holds a job back from the worker; ``fail_with="timeout"``
gives a job an execution timeout of half its pace, so the platform times it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from gpu_worker.controls import write_controls
from tests.standins.modal_worker import controls_for, time_limit_for
from tests.standins.runpod import RunpodStandin

ROOT = Path(__file__).resolve().parents[2]
#: runs the handler module as ``python -m`` would, after asking Linux to SIGTERM it when
#: the test process dies: a worker left behind would spin on a server that is gone
_DIE_WITH_PARENT = (
    "import ctypes, runpy, signal, sys; ctypes.CDLL(None).prctl(1, signal.SIGTERM); "
    "sys.argv[0] = 'gpu_worker.runpod_handler'; "
    "runpy.run_module('gpu_worker.runpod_handler', run_name='__main__', alter_sys=True)"
)


def handler_command(*args: str) -> list[str]:
    """``python -m gpu_worker.runpod_handler ARGS`` that ends with the test process."""
    return [sys.executable, "-c", _DIE_WITH_PARENT, *args]


LONG_POLL = 0.5  # seconds a job-take or job-stop request waits for something to say


@dataclass
class WorkerJob:
    id: str
    input: dict[str, Any]
    webhook: str | None
    available_at: float
    time_limit: float
    status: str = "IN_QUEUE"
    taken_at: float | None = None
    ended_at: float | None = None
    output: Any = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)

    @property
    def final(self) -> bool:
        return self.status not in ("IN_QUEUE", "IN_PROGRESS")


class RunpodWorkerStandin(RunpodStandin):
    def __init__(
        self,
        *,
        api_key: str = "runpod-test-key",
        endpoints: set[str] | None = None,
        concurrency: int = 8,
    ) -> None:
        super().__init__(api_key=api_key, endpoints=endpoints)
        self.concurrency = concurrency
        self.worker_jobs: dict[str, WorkerJob] = {}
        self.stops: list[str] = []
        self.worker_key = f"worker-{uuid.uuid4().hex}"
        self.worker_seen = threading.Event()
        self._folder = tempfile.TemporaryDirectory(prefix="runpod-worker-")
        self.folder = Path(self._folder.name)
        self.files = self.folder / "files"
        self.files.mkdir()
        self.controls_file = self.folder / "controls.json"
        self.log = self.folder / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        # wakes the worker's long polls (made on the server's loop, at its first request)
        self._changed: asyncio.Event | None = None
        self._server_loop: asyncio.AbstractEventLoop | None = None

    def _notify(self) -> None:
        """Something the worker waits for happened: a job queued, a stop asked."""
        event, loop = self._changed, self._server_loop
        if event is None or loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    async def _wait(self, until: float) -> None:
        """Sleep until ``until`` (monotonic) or the next ``_notify``."""
        if self._changed is None:
            self._changed = asyncio.Event()
            self._server_loop = asyncio.get_running_loop()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, until - time.monotonic()))

    # -- the worker process -----------------------------------------------------------

    def start(self) -> None:
        super().start()
        worker = f"{self.root_url}/worker"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "GPU_WORKER_"))},
            "HOME": str(self.folder),  # no ~/.runpod credentials of this machine
            "PYTHONPATH": str(ROOT),
            "RUNPOD_WEBHOOK_GET_JOB": f"{worker}/job-take/$ID?gpu=cpu",
            "RUNPOD_WEBHOOK_POST_OUTPUT": f"{worker}/job-done/$RUNPOD_POD_ID/$ID?gpu=cpu",
            "RUNPOD_AI_API_KEY": self.worker_key,
            "RUNPOD_SKIP_AUTO_SYSTEM_CHECKS": "true",
            "RUNPOD_SKIP_GPU_CHECK": "true",
            "RUNPOD_LOG_LEVEL": "WARN",
            "GPU_WORKER_ENGINE": "preview",
            "GPU_WORKER_CONTROLS": str(self.controls_file),
            "GPU_WORKER_OUTPUT_DIR": str(self.files),
            "GPU_WORKER_OUTPUT_BASE_URL": f"{self.root_url}/out/files",
            "GPU_WORKER_PROGRESS_INTERVAL": "0.05",
            "GPU_WORKER_CONCURRENCY": str(self.concurrency),
        }
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                handler_command(),
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not self.worker_seen.wait(30):
            self.stop()
            raise RuntimeError(f"the Runpod worker never asked for a job:\n{self.worker_log()}")

    def worker_log(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=LONG_POLL + 3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        super().stop()
        self._folder.cleanup()

    # -- Runpod's API over the worker's jobs ----------------------------------------------

    def submit(self, body: dict[str, Any]) -> str:
        knobs = self.knobs
        write_controls(self.controls_file, controls_for(knobs))
        policy = body.get("policy") or {}
        limit = float(policy.get("executionTimeout", 600_000)) / 1000
        job = WorkerJob(
            id=f"rw-{uuid.uuid4()}",
            input=body["input"],
            webhook=body.get("webhook"),
            available_at=time.monotonic() + knobs.queue_seconds,
            time_limit=time_limit_for(knobs, limit),
        )
        self.worker_jobs[job.id] = job
        self._notify()
        return job.id

    def _expire(self, job: WorkerJob) -> None:
        """A job running past its execution timeout is TIMED_OUT and told to stop."""
        taken = job.taken_at if job.status == "IN_PROGRESS" else None
        if taken is not None and time.monotonic() - taken > job.time_limit:
            self._end(job, "TIMED_OUT", error="execution timeout exceeded")
            self.stops.append(job.id)
            self._notify()

    def _end(
        self, job: WorkerJob, status: str, *, output: Any = None, error: str | None = None
    ) -> None:
        job.status, job.output, job.error, job.ended_at = status, output, error, time.monotonic()
        if job.webhook and status != "CANCELLED" and not self.knobs.drop_webhooks:
            with contextlib.suppress(RuntimeError):  # no loop: nobody to tell
                task = asyncio.get_running_loop().create_task(self._post_webhook(job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _post_webhook(self, job: WorkerJob) -> None:
        body = self._body(job)
        self.webhooks_sent.append(body)
        async with httpx.AsyncClient(timeout=5) as client:
            with contextlib.suppress(httpx.HTTPError):
                await client.post(job.webhook or "", json=body)

    def _body(self, job: WorkerJob) -> dict[str, Any]:
        body: dict[str, Any] = {"id": job.id, "status": job.status, "delayTime": 0}
        if job.taken_at is not None:
            body["delayTime"] = int((job.taken_at - job.created) * 1000)
            end = job.ended_at or time.monotonic()
            body["executionTime"] = int((end - job.taken_at) * 1000)
        if job.output is not None:
            body["output"] = job.output
        if job.error is not None:
            body["error"] = job.error
        return body

    def status_of(self, job_id: str) -> dict[str, Any] | None:
        job = self.worker_jobs.get(job_id)
        if job is None:
            return None
        self._expire(job)
        return self._body(job)

    def cancel_job(self, job_id: str) -> dict[str, Any] | None:
        job = self.worker_jobs.get(job_id)
        if job is None:
            return None
        self._expire(job)
        if not job.final:
            if job.status == "IN_PROGRESS":
                self.stops.append(job.id)  # the worker hears it on its job-stop channel
                self._notify()
            self._end(job, "CANCELLED")
        return self._body(job)

    def cancel_all(self) -> None:
        for job in self.worker_jobs.values():
            if not job.final:
                if job.status == "IN_PROGRESS":
                    self.stops.append(job.id)
                job.status, job.ended_at = "CANCELLED", time.monotonic()
        self._notify()

    def job_counts(self) -> dict[str, int]:
        jobs = list(self.worker_jobs.values())
        for job in jobs:
            self._expire(job)
        statuses = [j.status for j in jobs]
        return {
            "completed": statuses.count("COMPLETED"),
            "failed": statuses.count("FAILED") + statuses.count("TIMED_OUT"),
            "inProgress": statuses.count("IN_PROGRESS"),
            "inQueue": statuses.count("IN_QUEUE"),
            "retried": 0,
        }

    # -- the routes the worker speaks to ---------------------------------------------------

    def more_routes(self) -> list[Any]:
        standin = self

        def worker_only(request: Request[Any, Any, Any]) -> bool:
            standin.worker_seen.set()
            return request.headers.get("authorization") == standin.worker_key

        def take(batch: int) -> list[dict[str, Any]]:
            now = time.monotonic()
            taken: list[dict[str, Any]] = []
            for job in standin.worker_jobs.values():
                if len(taken) == batch:
                    break
                if job.status == "IN_QUEUE" and job.available_at <= now:
                    job.status, job.taken_at = "IN_PROGRESS", now
                    taken.append({"id": job.id, "input": job.input})
            return taken

        async def wait_for_jobs(batch: int) -> list[dict[str, Any]]:
            deadline = time.monotonic() + LONG_POLL
            while True:
                if standin._changed is not None:
                    standin._changed.clear()
                jobs = take(batch)
                now = time.monotonic()
                if jobs:
                    standin._notify()  # the job-stop poll now watches their time limits
                if jobs or now >= deadline:
                    return jobs
                held = [
                    j.available_at for j in standin.worker_jobs.values() if j.status == "IN_QUEUE"
                ]
                await standin._wait(min([deadline, *(t for t in held if t > now)]))

        @get("/worker/job-take/{worker_id:str}")
        async def job_take(
            request: Request[Any, Any, Any], worker_id: FromPath[str]
        ) -> Response[Any]:
            if not worker_only(request):
                return Response({"error": "Unauthorized"}, status_code=401)
            jobs = await wait_for_jobs(1)
            return Response(jobs[0]) if jobs else Response(b"", status_code=204)

        @get("/worker/job-take-batch/{worker_id:str}")
        async def job_take_batch(
            request: Request[Any, Any, Any], worker_id: FromPath[str]
        ) -> Response[Any]:
            if not worker_only(request):
                return Response({"error": "Unauthorized"}, status_code=401)
            jobs = await wait_for_jobs(int(request.query_params.get("batch_size", "1")))
            return Response(jobs) if jobs else Response(b"", status_code=204)

        @get("/worker/job-stop/{worker_id:str}")
        async def job_stop(
            request: Request[Any, Any, Any], worker_id: FromPath[str]
        ) -> Response[Any]:
            if not worker_only(request):
                return Response({"error": "Unauthorized"}, status_code=401)
            deadline = time.monotonic() + LONG_POLL
            while True:
                if standin._changed is not None:
                    standin._changed.clear()
                running = [j for j in standin.worker_jobs.values() if j.status == "IN_PROGRESS"]
                for job in running:
                    standin._expire(job)
                if standin.stops or time.monotonic() >= deadline:
                    break
                limits = [j.taken_at + j.time_limit for j in running if j.taken_at is not None]
                await standin._wait(min([deadline, *limits]))
            stops, standin.stops[:] = list(standin.stops), []
            return Response({"jobsToStop": stops}) if stops else Response(b"", status_code=204)

        @post("/worker/job-done/{worker_id:str}/{job_id:str}", status_code=200)
        async def job_done(
            request: Request[Any, Any, Any], worker_id: FromPath[str], job_id: FromPath[str]
        ) -> Response[Any]:
            if not worker_only(request):
                return Response({"error": "Unauthorized"}, status_code=401)
            job = standin.worker_jobs.get(job_id)
            if job is None:
                return Response({"error": "request does not exist"}, status_code=404)
            result = json.loads(await request.body())  # JSON sent as a form body
            standin._expire(job)
            if job.status != "IN_PROGRESS":
                return Response({})  # finished, cancelled or timed out: too late
            if result.get("status") == "IN_PROGRESS":  # a progress_update
                job.output = result.get("output")
            elif result.get("error"):
                standin._end(job, "FAILED", output=result.get("output"), error=str(result["error"]))
            else:
                standin._end(job, "COMPLETED", output=result.get("output"))
            return Response({})

        files = create_static_files_router(path="/out/files", directories=[standin.files])
        return [job_take, job_take_batch, job_stop, job_done, files]
