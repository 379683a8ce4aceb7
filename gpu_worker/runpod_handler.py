"""The Runpod serverless worker (docs/providers.md §2): ``runpod.serverless.start``
with a handler that runs ``job["input"]`` (§1) on the engine and reports progress
with ``runpod.serverless.progress_update``.

    python -m gpu_worker.runpod_handler          # in the worker image (gpu_worker/Dockerfile)

Answers: the §1 output (COMPLETED); ``{"error": "CONTENT_POLICY: …"}`` for a refusal
(FAILED, never retried by genstudio); ``{"error": "…"}`` for an input the worker
refuses; an exception for anything else (runpod-python reports it as FAILED with
``error_type`` and ``error_message``). The handler is asynchronous and runs the engine
in a thread, so runpod-python's stop signal (a cancelled or timed-out job) cancels it
and the engine stops at its next check. ``GPU_WORKER_CONCURRENCY`` jobs run at once
(default 1: one GPU, one job).
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from typing import Any

import runpod  # type: ignore[import-untyped]

from gpu_worker.contract import BadInput, ContentPolicyError
from gpu_worker.worker import Worker, worker_from_env


@functools.cache
def _worker() -> Worker:
    """Built once per process: the diffusers engine keeps its pipelines loaded."""
    return worker_from_env()


def run_input(job: dict[str, Any], worker: Worker, cancelled: threading.Event) -> dict[str, Any]:
    """The handler's answer for one Runpod job (blocking: runs the engine)."""

    def report(update: dict[str, int]) -> None:
        runpod.serverless.progress_update(job, update)

    try:
        return worker.run(job.get("input"), report=report, cancelled=cancelled)
    except ContentPolicyError as exc:
        return {"error": f"CONTENT_POLICY: {exc}"}
    except BadInput as exc:
        return {"error": f"the GPU worker refused the input: {exc}"}


async def handler(job: dict[str, Any]) -> dict[str, Any]:
    cancelled = threading.Event()
    try:
        return await asyncio.to_thread(run_input, job, _worker(), cancelled)
    except asyncio.CancelledError:  # runpod-python stops the job (cancelled, timed out)
        cancelled.set()
        raise


def main() -> None:
    concurrency = int(os.environ.get("GPU_WORKER_CONCURRENCY", "1"))
    _worker()  # load (and fail) at start, not on the first job
    runpod.serverless.start(
        {"handler": handler, "concurrency_modifier": lambda current: concurrency}
    )


if __name__ == "__main__":
    main()
