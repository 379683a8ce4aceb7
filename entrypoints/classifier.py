"""``genstudio classifier``: the local image classifier (NudeNet) as a small HTTP
service, so that API processes and workers need not each load the model (issue #20,
worker memory). ``adapters/classifier_service/wire.py`` has the protocol; the client
is ``ClassifierServiceClient``, chosen by ``GENSTUDIO_CLASSIFIER_URL``.

It serves any image ``Classifier``: inference runs off the event loop, at most
``threads`` images at once (each decoded image and its tensors are held only while
its turn runs; more requests wait their turn instead of growing the process), and
the model is loaded before the service says it is ready. It imports nothing of the
API (no database, no Redis): a process of the model and a web server.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post

from genstudio.adapters.classifier_service.wire import (
    CLASSIFY_IMAGE_PATH,
    IMAGE_TYPES,
    SURFACE_HEADER,
    WireLabel,
    WireVerdict,
)
from genstudio.core.model.moderation import Surface
from genstudio.entrypoints.http.problem_document import PROBLEM_JSON, problem_body
from genstudio.ports.moderation import Classifier, ModerationUnavailable, UnreadableImage

log = logging.getLogger("genstudio.classifier")

DEFAULT_PORT = 8010
#: an image larger than this is refused 413 (a generated output is a few MB at most)
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _problem(status: int, title: str, detail: str, code: str) -> Response[bytes]:
    body = problem_body(status, title, detail, code=code)
    return Response(body, status_code=status, media_type=PROBLEM_JSON)


def create_classifier_app(
    classifier: Classifier,
    *,
    token: str | None = None,
    threads: int | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
    warm_up: bytes | None = None,
) -> Litestar:
    """The service over ``classifier``. ``token``: the bearer every classify request
    must carry (None: none asked, for a service reachable only on loopback or a
    private network). ``warm_up``: an image classified at start-up (served with
    lifespan on, before the port answers), so the model is loaded by the time
    ``/health/ready`` answers and the first real request is not slow."""
    turns = asyncio.Semaphore(max(1, threads or os.cpu_count() or 1))
    state = {"classified": 0}
    expected = f"Bearer {token}".encode() if token else None

    async def load() -> None:
        """Before the port answers (uvicorn starts listening after start-up)."""
        if warm_up is not None:
            await classifier.classify_image(warm_up, "image/png", Surface.OUTPUT)
        log.info("classifier ready", extra={"classifier": classifier.name})

    @post(CLASSIFY_IMAGE_PATH, status_code=200)
    async def classify(request: Request[Any, Any, Any]) -> Response[bytes]:
        if expected is not None:
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return _problem(
                    401, "Unauthorized", "a valid bearer token is required", "unauthorized"
                )
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type not in IMAGE_TYPES:
            return _problem(
                415,
                "Unsupported media type",
                f"the body must be one of {', '.join(sorted(IMAGE_TYPES))}, not {content_type!r}",
                "unsupported_media_type",
            )
        try:
            surface = Surface(request.headers.get(SURFACE_HEADER.lower(), Surface.OUTPUT.value))
        except ValueError:
            return _problem(
                422, "Invalid input", f"{SURFACE_HEADER} is not a known surface", "invalid_input"
            )
        data = await request.body()
        if not data:
            return _problem(422, "Invalid input", "the body is empty", "invalid_input")
        async with turns:
            try:
                verdict = await classifier.classify_image(data, content_type, surface)
                state["classified"] += 1
            except UnreadableImage as exc:
                return _problem(422, "Invalid input", str(exc), "unreadable_image")
            except ModerationUnavailable as exc:
                return _problem(503, "Classifier unavailable", str(exc), "classifier_unavailable")
        labels = [
            WireLabel(str(label.reason), label.score, label.source) for label in verdict.labels
        ]
        return Response(msgspec.json.encode(WireVerdict(labels)), media_type="application/json")

    @get("/health/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @get("/health/ready")
    async def ready() -> dict[str, object]:
        """The model is loaded (the port answers only after the warm-up);
        ``classified``: images classified since start, the warm-up not counted."""
        return {"status": "ok", "classifier": classifier.name, "classified": state["classified"]}

    return Litestar(
        [classify, live, ready],
        on_startup=[load],
        request_max_body_size=max_bytes,
        openapi_config=None,
        debug=False,
    )


def run_classifier(host: str, port: int) -> None:
    """NudeNet on this process's CPUs, served on ``host:port`` (``genstudio
    classifier``). ``GENSTUDIO_CLASSIFIER_TOKEN``: the bearer asked of callers;
    ``GENSTUDIO_CLASSIFIER_THREADS``: images classified at once (default: the CPUs)."""
    import uvicorn

    from genstudio.adapters import nudenet
    from genstudio.adapters.memory.gpu import tiny_png

    if not nudenet.available():
        raise SystemExit("genstudio classifier needs nudenet and onnxruntime installed")
    threads = os.environ.get("GENSTUDIO_CLASSIFIER_THREADS", "").strip()
    if threads and not (threads.isdigit() and int(threads) > 0):
        raise SystemExit("GENSTUDIO_CLASSIFIER_THREADS must be a positive whole number")
    app = create_classifier_app(
        nudenet.NudeNetClassifier(),
        token=os.environ.get("GENSTUDIO_CLASSIFIER_TOKEN") or None,
        threads=int(threads) if threads else None,
        warm_up=tiny_png(64, 64, (128, 128, 128)),
    )
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
