"""What the Runpod and Modal stand-ins share: a real HTTP server on a loopback port in
its own thread, a job model that runs on the wall clock, real PNG outputs (and, for
a training, real LoRA weights from ``gpu_local``'s miniature trainer), and the
failure knobs.

Knobs (attributes of ``GpuKnobs``; change them at any time from the test):

- ``status_code``: answer every API call with this status (500, 503, ...)
- ``delay``: seconds to wait before answering any API call (client timeouts)
- ``rate_limited``: the next N API calls answer 429 (``-1``: every call)
- ``retry_after``: the Retry-After header of those 429s (None: no header)
- ``queue_seconds`` / ``job_seconds``: how long a new job waits, then runs
- ``stuck``: new jobs never finish
- ``fail_with``: new jobs end ``"content"`` refused, ``"infrastructure"`` failed,
  or ``"timeout"`` (Runpod TIMED_OUT)
- ``output``: ``"base64"`` or ``"url"`` (served by the stand-in under /files)
- ``drop_webhooks``: finished jobs do not call their webhook (Runpod)
- ``expire_results``: finished jobs answer as expired (Modal: 410)
"""

from __future__ import annotations

import abc
import asyncio
import base64
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import httpx
import uvicorn
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from genstudio.adapters.gpu_local import render_png
from genstudio.adapters.gpu_local.renderer import render_edit
from genstudio.adapters.gpu_local.trainer import train_lora
from genstudio.adapters.gpu_local.video import render_video

FailKind = Literal["content", "infrastructure", "timeout"]
#: what a stand-in serves: a Litestar app, or any ASGI app
AsgiApp = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass
class GpuKnobs:
    status_code: int | None = None
    delay: float = 0.0
    rate_limited: int = 0
    retry_after: float | None = 0.05
    queue_seconds: float = 0.0
    job_seconds: float = 0.05
    stuck: bool = False
    fail_with: FailKind | None = None
    output: Literal["base64", "url"] = "base64"
    drop_webhooks: bool = False
    expire_results: bool = False


@dataclass
class StandinJob:
    id: str
    input: dict[str, Any]
    created: float
    queue_seconds: float
    job_seconds: float
    stuck: bool
    fail_with: FailKind | None
    output: Literal["base64", "url"]
    webhook: str | None = None
    cancelled: bool = False
    images: list[bytes] = field(default_factory=list)
    # a training trains in a thread of its own from submission (downloading its photos
    # as a worker would): it is done once that finished too, and answers stay quick
    trained: threading.Event | None = None

    def phase(self, now: float) -> tuple[str, int]:
        """("queued" | "running" | "done" | "cancelled", progress)."""
        if self.cancelled:
            return "cancelled", 0
        elapsed = now - self.created
        if elapsed < self.queue_seconds:
            return "queued", 0
        running = elapsed - self.queue_seconds
        if self.stuck or running < self.job_seconds:
            return "running", min(99, int(100 * running / max(self.job_seconds, 1e-9)))
        if self.trained is not None and not self.trained.is_set():
            return "running", 99
        return "done", 100

    def finishes_in(self, now: float) -> float | None:
        if self.stuck:
            return None
        return max(0.0, self.created + self.queue_seconds + self.job_seconds - now)

    def render(self) -> list[bytes]:
        """The job's files: images (image and edit jobs) or [mp4, poster] (video jobs).

        Edit and video jobs download their inputs from the signed URLs they name,
        as the real GPU worker would: from the ``inputs`` list, or from the older
        ``<name>_url`` fields when a client sends no list."""
        if not self.images:
            i = self.input
            kind = i.get("kind", "image")
            if kind == "training":
                # the photos come by URL, as a real trainer downloads them
                photos = [
                    _download(str(given["url"]))
                    for given in i.get("inputs") or []
                    if given.get("name") == "photo"
                ]
                weights, sample, _ = train_lora(
                    photos,
                    steps=int(i["steps"]),
                    trigger_word=str(i["trigger_word"]),
                    seed=i.get("seed"),
                )
                self.images = [weights, sample]
            elif kind == "edit":
                self.images = [
                    render_edit(
                        image_png=_download(_input_url(i, "image")),
                        mask_png=_download(_input_url(i, "mask")),
                        prompt=str(i.get("prompt", "")),
                        negative_prompt=str(i.get("negative_prompt", "")),
                        seed=i.get("seed"),
                    )
                ]
            elif kind == "video":
                mp4, poster = render_video(
                    prompt=str(i.get("prompt", "")),
                    negative_prompt=str(i.get("negative_prompt", "")),
                    seed=i.get("seed"),
                    width=int(i["width"]),
                    height=int(i["height"]),
                    fps=int(i["fps"]),
                    duration_seconds=int(i["duration_seconds"]),
                    image_png=_download_input(i, "image"),
                    first_png=_download_input(i, "first_frame"),
                    last_png=_download_input(i, "last_frame"),
                )
                self.images = [mp4, poster]
            else:
                self.images = [
                    render_png(
                        prompt=str(i.get("prompt", "")),
                        negative_prompt=str(i.get("negative_prompt", "")),
                        seed=i.get("seed"),
                        width=int(i.get("width", 64)),
                        height=int(i.get("height", 64)),
                        index=n,
                    )
                    for n in range(int(i.get("num_outputs", 1)))
                ]
        return self.images

    def running(self, progress: int) -> dict[str, int]:
        """What a running job reports: a training its ``step``/``total``, others
        ``progress``."""
        if self.input.get("kind") == "training":
            total = int(self.input.get("steps") or 1)
            return {"step": total * progress // 100, "total": total}
        return {"progress": progress}

    def output_json(self, base_url: str) -> dict[str, Any]:
        """The finished job's ``output`` (videos always inline, as base64)."""
        if self.input.get("kind") == "training":
            weights, sample = self.render()
            if self.output == "url":
                return {
                    "weights": {
                        "url": f"{base_url}/files/{self.id}/0.safetensors",
                        "content_type": "application/octet-stream",
                    },
                    "samples": [
                        {"url": f"{base_url}/files/{self.id}/1.png", "content_type": "image/png"}
                    ],
                }
            return {
                "weights": {
                    "base64": base64.b64encode(weights).decode(),
                    "content_type": "application/octet-stream",
                },
                "samples": [
                    {"base64": base64.b64encode(sample).decode(), "content_type": "image/png"}
                ],
            }
        if self.input.get("kind") == "video":
            mp4, poster = self.render()
            return {
                "videos": [{"base64": base64.b64encode(mp4).decode(), "content_type": "video/mp4"}],
                "posters": [
                    {"base64": base64.b64encode(poster).decode(), "content_type": "image/png"}
                ],
            }
        return {"images": self.images_json(base_url)}

    def images_json(self, base_url: str) -> list[dict[str, str]]:
        if self.output == "url":
            return [
                {"url": f"{base_url}/files/{self.id}/{n}.png", "content_type": "image/png"}
                for n in range(len(self.render()))
            ]
        return [
            {"base64": base64.b64encode(png).decode(), "content_type": "image/png"}
            for png in self.render()
        ]


class GpuStandinBase(abc.ABC):
    """Knobs, jobs and call records; the subclass builds the Litestar app."""

    def __init__(self) -> None:
        self.knobs = GpuKnobs()
        self.jobs: dict[str, StandinJob] = {}
        self.calls: list[tuple[str, str, int, float]] = []  # method, path, status, time
        self.webhooks_sent: list[dict[str, Any]] = []
        self._ids = 0
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # -- the server -----------------------------------------------------------------------

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @abc.abstractmethod
    def app(self) -> AsgiApp:
        """The stand-in's HTTP app (each provider's routes)."""

    def cancel_all(self) -> None:
        """Cancel every job (a test leaves nothing running for the next)."""
        for job in self.jobs.values():
            job.cancelled = True

    def files_route(self) -> HTTPRouteHandler:
        """Output files for URL outputs: no auth, like a pre-signed bucket URL."""
        standin = self

        @get("/files/{job_id:str}/{name:str}", media_type="image/png")
        async def files(job_id: FromPath[str], name: FromPath[str]) -> Response[bytes]:
            index = name.split(".")[0]  # 0.png, 0.safetensors
            data = standin.file(job_id, int(index)) if index.isdigit() else None
            if data is None:
                return Response(b"", status_code=404)
            return Response(data, media_type="image/png")

        return files

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the stand-in did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- knobs applied to every API call --------------------------------------------------

    async def gate(self) -> tuple[int, dict[str, str]] | None:
        """Delay, then a forced status (with headers) or None to go on."""
        k = self.knobs
        if k.delay > 0:
            await asyncio.sleep(k.delay)
        if k.status_code is not None:
            return k.status_code, {}
        with self._lock:
            if k.rate_limited:
                if k.rate_limited > 0:
                    k.rate_limited -= 1
                headers = {} if k.retry_after is None else {"Retry-After": f"{k.retry_after:g}"}
                return 429, headers
        return None

    def record(self, method: str, path: str, status: int) -> None:
        self.calls.append((method, path, status, time.monotonic()))

    def statuses(self, path_part: str = "") -> list[int]:
        return [status for _, path, status, _ in self.calls if path_part in path]

    # -- jobs -----------------------------------------------------------------------------

    def new_job(self, prefix: str, job_input: dict[str, Any], webhook: str | None) -> StandinJob:
        k = self.knobs
        with self._lock:
            self._ids += 1
            job_id = f"{prefix}{self._ids:06d}-{int(time.time() * 1000) % 100000:05d}"
        job = StandinJob(
            id=job_id,
            input=job_input,
            created=time.monotonic(),
            queue_seconds=k.queue_seconds,
            job_seconds=k.job_seconds,
            stuck=k.stuck,
            fail_with=k.fail_with,
            output=k.output,
            webhook=webhook,
        )
        self.jobs[job_id] = job
        if job_input.get("kind") == "training" and not k.fail_with:
            job.trained = threading.Event()
            trained = job.trained

            def train() -> None:
                try:
                    job.render()
                finally:
                    trained.set()

            threading.Thread(target=train, daemon=True).start()
        return job

    def counts(self) -> tuple[int, int]:
        """(queued, running) jobs now."""
        now = time.monotonic()
        phases = [job.phase(now)[0] for job in self.jobs.values()]
        return phases.count("queued"), phases.count("running")

    def file(self, job_id: str, index: int) -> bytes | None:
        job = self.jobs.get(job_id)
        if job is None or job.phase(time.monotonic())[0] != "done" or job.fail_with:
            return None
        images = job.render()
        return images[index] if 0 <= index < len(images) else None


def _input_url(job_input: dict[str, Any], name: str) -> str:
    """The URL of the job's first input of that name (KeyError when it has none)."""
    for given in job_input.get("inputs") or []:
        if given.get("name") == name:
            return str(given["url"])
    return str(job_input[f"{name}_url"])


def _download_input(job_input: dict[str, Any], name: str) -> bytes | None:
    try:
        url = _input_url(job_input, name)
    except KeyError:
        return None
    return _download(url)


def _download(url: str) -> bytes:
    response = httpx.get(url, timeout=10)
    response.raise_for_status()
    return response.content
