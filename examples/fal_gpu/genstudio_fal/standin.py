"""A stand-in for fal's queue API (https://queue.fal.run) on loopback, written from fal's
public documentation (docs.fal.ai: "Asynchronous inference", the Queue API reference,
"Request Error Types", "Model Errors", "Handle request cancellations"), for tests of
``FalProvider`` and of deployments that use it. It ships with the package, as
genstudio's own stand-ins ship in ``genstudio.testing``.

What it speaks (every call but the file downloads needs ``Authorization: Key <key>``;
401 otherwise)::

    POST /{owner}/{app}[/{path}]                      submit: the model's input as JSON
         -> 200 {request_id, response_url, status_url, cancel_url, status: IN_QUEUE,
                 queue_position}; the URLs name only owner/app, never the path
    GET  /{owner}/{app}/requests/{id}/status[?logs=1]
         -> 202 {status: IN_QUEUE, queue_position} | {status: IN_PROGRESS, logs}
         -> 200 {status: COMPLETED, logs, metrics}      404 unknown request
    GET  /{owner}/{app}/requests/{id}                 the result, once COMPLETED:
         -> 200 the model's output: {images: [{url, width, height, content_type}],
                seed, has_nsfw_concepts, timings, prompt}
         -> 400 still in progress; 422 {detail: [{loc, msg, type}]} (model errors:
                content_policy_violation, validation); 503/504 {detail, error_type}
                with X-Fal-Error-Type (request errors); 499 cancelled
    PUT  /{owner}/{app}/requests/{id}/cancel
         -> 202 {status: CANCELLATION_REQUESTED} | 400 {status: ALREADY_COMPLETED}
            | 404 {status: NOT_FOUND}
    GET  /files/{id}/{n}.png                          the outputs (fal's CDN: no key)

The model behind every endpoint is a text-to-image one with the input of fal's Flux
endpoints: ``prompt``, ``image_size`` (``{width, height}`` or a preset name such as
``landscape_4_3``), ``num_images`` (1-4), ``seed``, ``output_format`` (png/jpeg),
``enable_safety_checker``, ``sync_mode`` (outputs as data URIs).

Not documented by fal, acted out as a fal app does that raises
RequestCancelledException: a cancelled request (queued or running) completes, and its
result answers 499. The docs say a running request is told to stop and a queued one is
never processed; they do not show what its status and result then read.

Knobs (``FalKnobs``; change them from the test at any time; they apply to requests
submitted after): ``queue_seconds`` and ``run_seconds`` (the wall-clock phases),
``stuck`` (never completes), ``fail_with`` (``"content"``: 422
content_policy_violation; ``"validation"``: 422 on a field; ``"runner"``: 503
runner_disconnected; ``"timeout"``: 504 request_timeout), ``nsfw`` (the safety checker
flags the outputs), ``sync_mode`` (data URIs instead of file URLs). Faults of the
loopback server apply to every call: ``inject(Fail(503))``, ``inject(RateLimit(1))``
(429 with Retry-After), ``inject(Stall(5))`` (no answer in time).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from genstudio.testing.standins.loopback import (
    Fault,
    LoopbackStandIn,
    Reply,
    Request,
    json_reply,
)
from PIL import Image, ImageDraw

FailKind = Literal["content", "validation", "runner", "timeout"]

#: fal's image size presets (the Flux endpoints' ``image_size`` enum)
SIZE_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}


@dataclass
class FalKnobs:
    queue_seconds: float = 0.0
    run_seconds: float = 0.05
    stuck: bool = False
    fail_with: FailKind | None = None
    nsfw: bool = False
    sync_mode: bool = False


@dataclass
class FalRequest:
    id: str
    app: str  # owner/app
    endpoint: str  # owner/app[/path]: what was submitted to
    input: dict[str, Any]
    created: float
    knobs: FalKnobs
    cancelled: bool = False
    images: list[bytes] = field(default_factory=list)

    def phase(self, now: float) -> str:
        """IN_QUEUE, IN_PROGRESS or COMPLETED."""
        if self.cancelled:
            return "COMPLETED"
        elapsed = now - self.created
        if elapsed < self.knobs.queue_seconds:
            return "IN_QUEUE"
        if self.knobs.stuck or elapsed < self.knobs.queue_seconds + self.knobs.run_seconds:
            return "IN_PROGRESS"
        return "COMPLETED"


class FalStandin(LoopbackStandIn):
    name = "fal"

    def __init__(self, *, key: str = "fal-test-key") -> None:
        super().__init__()
        self.key = key
        self.knobs = FalKnobs()
        self.jobs: dict[str, FalRequest] = {}
        self.submitted: list[tuple[str, dict[str, Any]]] = []  # (endpoint, input)
        self.cancelled: list[str] = []
        self._jobs_lock = threading.Lock()

    # -- the API -----------------------------------------------------------------------

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        parts = [p for p in request.path.split("/") if p]
        if request.method == "GET" and len(parts) == 3 and parts[0] == "files":
            return self._file(parts[1], parts[2])
        if request.headers.get("authorization") != f"Key {self.key}":
            return json_reply({"detail": "Invalid or missing Key in the Authorization header"}, 401)
        if len(parts) >= 4 and parts[2] == "requests":
            app, request_id, rest = f"{parts[0]}/{parts[1]}", parts[3], parts[4:]
            job = self.jobs.get(request_id)
            if job is not None and job.app != app:
                job = None  # another app's request is not found under this one
            if request.method == "GET" and rest == ["status"]:
                return self._status(job, request)
            if request.method == "GET" and not rest:
                return self._result(job)
            if request.method == "PUT" and rest == ["cancel"]:
                return self._cancel(job)
        if request.method == "POST" and len(parts) >= 2:
            return self._submit("/".join(parts), request)
        return json_reply({"detail": "Not Found"}, 404)

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply({"detail": message}, status, headers)

    def _urls(self, app: str, request_id: str) -> dict[str, str]:
        base = f"{self.url}/{app}/requests/{request_id}"
        return {
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _submit(self, endpoint: str, request: Request) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return json_reply({"detail": "the body is not JSON"}, 400)
        if not isinstance(body, dict):
            return json_reply({"detail": "the body must be a JSON object"}, 422)
        problem = _invalid(body)
        if problem is not None:
            return json_reply({"detail": [problem]}, 422)
        owner, app = endpoint.split("/")[:2]
        job = FalRequest(
            id=str(uuid.uuid4()),
            app=f"{owner}/{app}",
            endpoint=endpoint,
            input=body,
            created=time.monotonic(),
            knobs=FalKnobs(**self.knobs.__dict__),
        )
        with self._jobs_lock:
            self.jobs[job.id] = job
            self.submitted.append((endpoint, body))
            position = self._position(job)
        return json_reply(
            {
                "request_id": job.id,
                **self._urls(job.app, job.id),
                "status": "IN_QUEUE",
                "queue_position": position,
            }
        )

    def _status(self, job: FalRequest | None, request: Request) -> Reply:
        if job is None:
            return json_reply({"detail": "Request not found"}, 404)
        phase = job.phase(time.monotonic())
        logs = request.query.get("logs") in ("1", "true", "True")
        body: dict[str, Any] = {"status": phase, **self._urls(job.app, job.id)}
        if phase == "IN_QUEUE":
            with self._jobs_lock:
                body["queue_position"] = self._position(job)
            return json_reply(body, 202)
        body["logs"] = (
            [{"message": "generating", "level": "INFO", "timestamp": _now()}] if logs else None
        )
        if phase == "IN_PROGRESS":
            return json_reply(body, 202)
        body["metrics"] = {"inference_time": job.knobs.run_seconds}
        return json_reply(body, 200)

    def _result(self, job: FalRequest | None) -> Reply:
        if job is None:
            return json_reply({"detail": "Request not found"}, 404)
        if job.phase(time.monotonic()) != "COMPLETED":
            return json_reply({"detail": "Request is still in progress"}, 400)
        fal = {"x-fal-request-id": job.id}
        if job.cancelled:
            return json_reply({"detail": "Request cancelled"}, 499, fal)
        fail = job.knobs.fail_with
        if fail == "content":
            error = {
                "loc": ["body", "prompt"],
                "msg": "The content was flagged by a content checker.",
                "type": "content_policy_violation",
                "url": "https://docs.fal.ai/errors#content_policy_violation",
                "input": job.input.get("prompt"),
            }
            return json_reply({"detail": [error]}, 422, fal)
        if fail == "validation":
            error = {
                "loc": ["body", "image_size"],
                "msg": "the image size is not supported by this model",
                "type": "value_error",
            }
            return json_reply({"detail": [error]}, 422, fal)
        if fail == "runner":
            return json_reply(
                {"detail": "Runner disconnected", "error_type": "runner_disconnected"},
                503,
                {**fal, "X-Fal-Error-Type": "runner_disconnected"},
            )
        if fail == "timeout":
            return json_reply(
                {"detail": "Request timed out", "error_type": "request_timeout"},
                504,
                {**fal, "X-Fal-Error-Type": "request_timeout"},
            )
        return json_reply(self._output(job), 200, fal)

    def _cancel(self, job: FalRequest | None) -> Reply:
        if job is None:
            return json_reply({"status": "NOT_FOUND"}, 404)
        if job.cancelled or job.phase(time.monotonic()) == "COMPLETED":
            return json_reply({"status": "ALREADY_COMPLETED"}, 400)
        job.cancelled = True
        self.cancelled.append(job.id)
        return json_reply({"status": "CANCELLATION_REQUESTED"}, 202)

    def _file(self, request_id: str, name: str) -> Reply:
        job = self.jobs.get(request_id)
        index = name.removesuffix(".png")
        if job is None or not index.isdigit() or int(index) >= len(job.images):
            return json_reply({"detail": "Not Found"}, 404)
        return Reply(200, job.images[int(index)], "image/png")

    # -- the model ---------------------------------------------------------------------

    def _output(self, job: FalRequest) -> dict[str, Any]:
        width, height = _size(job.input.get("image_size"))
        count = int(job.input.get("num_images", 1))
        seed = job.input.get("seed")
        if not job.images:
            job.images = [
                _render(
                    str(job.input.get("prompt", "")), seed, n, width, height, black=job.knobs.nsfw
                )
                for n in range(count)
            ]
        images = []
        for n, png in enumerate(job.images):
            url = (
                "data:image/png;base64," + base64.b64encode(png).decode()
                if job.knobs.sync_mode or job.input.get("sync_mode") is True
                else f"{self.url}/files/{job.id}/{n}.png"
            )
            images.append(
                {"url": url, "width": width, "height": height, "content_type": "image/png"}
            )
        return {
            "images": images,
            "seed": seed if isinstance(seed, int) else 42,
            "has_nsfw_concepts": [job.knobs.nsfw] * count,
            "timings": {"inference": job.knobs.run_seconds},
            "prompt": job.input.get("prompt", ""),
        }

    def _position(self, job: FalRequest) -> int:
        now = time.monotonic()
        return sum(
            1
            for other in self.jobs.values()
            if other.created < job.created and other.phase(now) == "IN_QUEUE"
        )


def _invalid(body: dict[str, Any]) -> dict[str, Any] | None:
    """A validation error for an input fal's Flux endpoints refuse, else None."""
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        return {"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}
    count = body.get("num_images", 1)
    if not isinstance(count, int) or not 1 <= count <= 4:
        return {"loc": ["body", "num_images"], "msg": "must be 1 to 4", "type": "value_error"}
    size = body.get("image_size", "landscape_4_3")
    if isinstance(size, str) and size in SIZE_PRESETS:
        return None
    if isinstance(size, dict) and all(
        isinstance(size.get(s), int) and 16 <= size[s] <= 14142 for s in ("width", "height")
    ):
        return None
    return {
        "loc": ["body", "image_size"],
        "msg": "not a preset or {width, height}",
        "type": "value_error",
    }


def _size(size: Any) -> tuple[int, int]:
    if isinstance(size, dict):
        return int(size["width"]), int(size["height"])
    return SIZE_PRESETS.get(str(size), SIZE_PRESETS["landscape_4_3"])


def _render(prompt: str, seed: Any, n: int, width: int, height: int, *, black: bool) -> bytes:
    """A real PNG of the size asked: colours from the prompt, the seed and the index
    (black where the safety checker flagged it, as fal's Flux endpoints blank them)."""
    digest = hashlib.sha256(json.dumps([prompt, seed, n]).encode()).digest()
    image = Image.new("RGB", (width, height), (0, 0, 0) if black else tuple(digest[:3]))
    if not black:
        draw = ImageDraw.Draw(image)
        draw.ellipse(
            (width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=tuple(digest[3:6])
        )
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
