"""Our Modal app's real endpoints (``gpu_worker.web``), served locally as on Modal:
``gpu_worker.local`` acts out Modal's calls, its ``modal.Dict`` and its proxy auth,
over the CPU preview engine. In front, what only Modal's platform does, as the knobs
of ``tests.standins.gpu_jobs`` ask: slow or failing answers and 429s from its edge,
queueing for a container, a function's time limit, expired results.

It has the stand-in's face (``knobs``, ``calls``, ``submit_bodies``, ``cancel_all``),
so the contract tests run unchanged over it and over ``ModalStandin``. The knobs of a
job's own behaviour reach the worker as its controls (``gpu_worker.controls``):
``job_seconds`` its pace, ``stuck``, ``fail_with`` content or infrastructure, and
``output`` url or base64 (URL outputs go to a folder served here under /out/files/,
as a bucket's pre-signed URLs would). ``fail_with="timeout"`` gives the call a time
limit of half its pace, so Modal's limit ends it.
"""

from __future__ import annotations

import contextlib
import json
import mimetypes
import tempfile
import time
from pathlib import Path
from typing import Any

from gpu_worker.controls import Controls
from gpu_worker.local import Asgi, Receive, Scope, Send, local_modal
from gpu_worker.outputs import DirectoryStore
from gpu_worker.preview import PreviewEngine
from gpu_worker.worker import Worker
from tests.standins.gpu_jobs import GpuKnobs, GpuStandinBase

FILES = "/out/files"
#: no output is larger than this: "base64" keeps every output inline
ALWAYS_INLINE = 1 << 40


def controls_for(knobs: GpuKnobs) -> Controls:
    """The worker controls that act out a job's knobs."""
    return Controls(
        inline_max_bytes=0 if knobs.output == "url" else ALWAYS_INLINE,
        seconds=knobs.job_seconds,
        stuck=knobs.stuck,
        fail=knobs.fail_with if knobs.fail_with in ("content", "infrastructure") else None,
    )


def time_limit_for(knobs: GpuKnobs, default: float) -> float:
    return max(0.05, knobs.job_seconds / 2) if knobs.fail_with == "timeout" else default


class ModalWorkerStandin(GpuStandinBase):
    def __init__(self, *, token_id: str = "wk-test", token_secret: str = "ws-test") -> None:
        super().__init__()
        self.token_id = token_id
        self.token_secret = token_secret
        self.submit_bodies: list[dict[str, Any]] = []
        self._folder = tempfile.TemporaryDirectory(prefix="modal-worker-")
        self.files = Path(self._folder.name)
        self.controls = Controls()
        self.worker = Worker(
            engine=PreviewEngine(lambda: self.controls),
            store=DirectoryStore(self.files, "http://unset"),  # the port is known at start
            controls=lambda: self.controls,
            progress_interval=0.05,
        )
        self.local = local_modal(self.worker, token_id=token_id, token_secret=token_secret)

    @property
    def base_url(self) -> str:
        return self.root_url

    def start(self) -> None:
        super().start()
        self.worker.store = DirectoryStore(self.files, f"{self.root_url}{FILES}")

    def stop(self) -> None:
        self.cancel_all()
        super().stop()
        self._folder.cleanup()

    def cancel_all(self) -> None:
        self.local.calls.cancel_all()

    def app(self) -> Asgi:
        return _Edge(self)

    async def _edge(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Modal's edge: files of URL outputs, then the knobs, then our app."""
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(f"{FILES}/"):
            await self._file(path.removeprefix(f"{FILES}/"), send)
            return
        status: list[int] = []

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        answered_at = [0.0]
        try:
            forced = await self.gate()
            answered_at[0] = time.monotonic()  # as the stand-ins: when the gate let it through
            if forced is not None:
                code, headers = forced
                await _json(recording_send, code, {"detail": f"modal {code}"}, headers)
                return
            knobs = self.knobs
            calls = self.local.calls
            calls.queue_seconds = knobs.queue_seconds
            calls.result_ttl = 0.0 if knobs.expire_results else None
            calls.timeout = time_limit_for(knobs, 3600.0)
            if path == "/submit" and scope["method"] == "POST":
                body = b""
                while True:
                    message = await receive()
                    body += message.get("body", b"")
                    if not message.get("more_body"):
                        break
                with contextlib.suppress(ValueError):  # the app answers a bad body
                    self.submit_bodies.append(json.loads(body))
                self.controls = controls_for(knobs)
                sent = False

                async def replay() -> dict[str, Any]:
                    nonlocal sent
                    if sent:
                        return {"type": "http.disconnect"}
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                await self.local.app(scope, replay, recording_send)
            else:
                await self.local.app(scope, receive, recording_send)
        finally:
            self.calls.append((scope["method"], path, status[0] if status else 0, answered_at[0]))

    async def _file(self, key: str, send: Send) -> None:
        path = (self.files / key).resolve()
        if not path.is_relative_to(self.files.resolve()) or not path.is_file():
            await _json(send, 404, {"detail": "no such file"})
            return
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        data = path.read_bytes()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", kind.encode()),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


class _Edge:
    """The edge as an ASGI 3 app (uvicorn takes a bound method for ASGI 2)."""

    def __init__(self, standin: ModalWorkerStandin) -> None:
        self.standin = standin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.standin._edge(scope, receive, send)


async def _json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
        }
    )
    await send({"type": "http.response.body", "body": raw})
