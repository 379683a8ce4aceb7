"""One job, start to end: parse the input, run the engine, answer its files.

Both the Modal function and the Runpod handler call ``Worker.run``; they differ only
in where progress goes and how a cancellation arrives.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gpu_worker.contract import EditJob, ImageJob, TrainingJob, VideoJob, parse_job
from gpu_worker.controls import Controls, ControlSource, controls_from_env
from gpu_worker.engine import Context, Engine
from gpu_worker.outputs import DirectoryStore, Outputs, S3Store, Store

#: what one input may weigh: a LoRA's weights are up to 1 GB, photos far less
MAX_INPUT_BYTES = 1024 * 1024 * 1024

Report = Callable[[dict[str, int]], None]


class Downloader:
    """GETs signed input URLs without credentials, over one HTTP client (an SSL context
    costs ~0.1 s of CPU to make: once per worker, not once per input)."""

    def __init__(self, *, timeout: float = 120.0, max_bytes: int = MAX_INPUT_BYTES) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, follow_redirects=True)
            return self._client

    def __call__(self, url: str) -> bytes:
        """The body of ``url``; raises on a non-200 or a file over ``max_bytes``."""
        if not url.startswith(("https://", "http://")):
            raise ValueError("an input URL must be http(s)")
        with self.client.stream("GET", url) as response:
            if response.status_code != 200:
                raise RuntimeError(f"downloading an input answered HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise RuntimeError(f"an input is over {self.max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)


class Throttle:
    """Progress as the contract reports it, sent when it rose and at most once per
    ``interval`` seconds (the last one before the end may be dropped: the answer follows).

    A training reports ``{"step", "total"}``, any other job ``{"progress": 0-100}``."""

    def __init__(self, send: Report, *, interval: float, steps: bool) -> None:
        self.send = send
        self.interval = interval
        self.steps = steps
        self.last = -1
        self.sent_at = float("-inf")

    def __call__(self, done: int, total: int) -> None:
        if total <= 0:
            return
        value = done if self.steps else min(100, 100 * done // total)
        now = time.monotonic()
        if value <= self.last or now - self.sent_at < self.interval:
            return
        self.last, self.sent_at = value, now
        self.send({"step": done, "total": total} if self.steps else {"progress": value})


@dataclass
class Worker:
    engine: Engine
    store: Store | None = None
    controls: ControlSource = Controls
    fetch: Callable[[str], bytes] = field(default_factory=Downloader)
    progress_interval: float = 1.0

    def run(
        self, raw: Any, *, report: Report, cancelled: threading.Event | None = None
    ) -> dict[str, Any]:
        """The job's output (§1) for its input ``raw``. Raises BadInput,
        ContentPolicyError, JobCancelled, or anything else for a broken job."""
        job = parse_job(raw)
        controls = self.controls()
        outputs = Outputs(self.store, inline_max_bytes=controls.inline_max_bytes, job_id=job.job_id)
        ctx = Context(
            download=self.fetch,
            report=Throttle(
                report, interval=self.progress_interval, steps=isinstance(job, TrainingJob)
            ),
            cancelled=cancelled or threading.Event(),
        )
        ctx.check()
        if isinstance(job, ImageJob):
            return {
                "images": [
                    outputs.file(p, "image/png", ".png") for p in self.engine.image(job, ctx)
                ]
            }
        if isinstance(job, EditJob):
            return {"images": [outputs.file(self.engine.edit(job, ctx), "image/png", ".png")]}
        if isinstance(job, VideoJob):
            video = self.engine.video(job, ctx)
            return {
                "videos": [outputs.file(video.mp4, "video/mp4", ".mp4")],
                "posters": [outputs.file(video.poster, "image/png", ".png")],
            }
        lora = self.engine.train(job, ctx)
        return {
            "weights": outputs.file(lora.weights, "application/octet-stream", ".safetensors"),
            "samples": [outputs.file(s, "image/png", ".png") for s in lora.samples],
        }


def engine_from_env(env: Mapping[str, str], controls: ControlSource) -> Engine:
    name = env.get("GPU_WORKER_ENGINE", "diffusers")
    if name == "preview":
        from gpu_worker.preview import PreviewEngine

        return PreviewEngine(controls)
    if name == "diffusers":
        from gpu_worker.diffusion import DiffusersEngine

        return DiffusersEngine.from_env(env)
    raise ValueError(f"GPU_WORKER_ENGINE must be preview or diffusers, not {name!r}")


def store_from_env(env: Mapping[str, str]) -> Store | None:
    """``GPU_WORKER_S3_BUCKET`` (with ``GPU_WORKER_S3_ENDPOINT_URL``, ``_PREFIX``,
    ``_REGION``, ``GPU_WORKER_URL_TTL``; credentials as boto3 reads them, e.g.
    ``AWS_ACCESS_KEY_ID``), or ``GPU_WORKER_OUTPUT_DIR`` published at
    ``GPU_WORKER_OUTPUT_BASE_URL``; None: every output inline."""
    bucket = env.get("GPU_WORKER_S3_BUCKET")
    if bucket:
        return S3Store(
            bucket,
            prefix=env.get("GPU_WORKER_S3_PREFIX", ""),
            endpoint_url=env.get("GPU_WORKER_S3_ENDPOINT_URL") or None,
            region=env.get("GPU_WORKER_S3_REGION") or None,
            expires=int(env.get("GPU_WORKER_URL_TTL", "7200")),
        )
    folder = env.get("GPU_WORKER_OUTPUT_DIR")
    if folder:
        base_url = env.get("GPU_WORKER_OUTPUT_BASE_URL")
        if not base_url:
            raise ValueError("GPU_WORKER_OUTPUT_DIR needs GPU_WORKER_OUTPUT_BASE_URL")
        return DirectoryStore(Path(folder), base_url)
    return None


def worker_from_env(env: Mapping[str, str] = os.environ) -> Worker:
    """The worker the environment describes (gpu_worker/README.md lists the variables)."""
    controls = controls_from_env(env)
    return Worker(
        engine=engine_from_env(env, controls),
        store=store_from_env(env),
        controls=controls,
        progress_interval=float(env.get("GPU_WORKER_PROGRESS_INTERVAL", "1.0")),
    )
