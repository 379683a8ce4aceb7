"""The training contract of docs/providers.md over the Modal and Runpod adapters, against
their loopback stand-ins and against our GPU worker (gpu_worker/, its CPU preview
engine), and over the embedded default's CPU trainer: the worker
gets the photos as named inputs (signed URLs), the steps, trigger word, base model
and seed; it reports step progress; it answers LoRA weights (a valid
``.safetensors``) and sample images, inline or by URL; a failure mid-training says
why."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from genstudio.adapters.gpu_http import worker_input
from genstudio.adapters.gpu_local import LocalGpuProvider
from genstudio.adapters.gpu_modal import ModalProvider
from genstudio.adapters.gpu_runpod import RunpodProvider
from genstudio.core.model.job_params import TrainingParams
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import PNG_SIGNATURE
from genstudio.core.model.training.models import check_lora
from genstudio.ports.gpu import (
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    OutputRole,
    ProviderInput,
)
from tests.contract.faces import distinct_face_jpegs
from tests.contract.test_gpu_provider import settle
from tests.contract.test_gpu_remote_providers import (
    SIDES,
    fresh,
    modal_provider,
    modal_side,
    modal_standin,
    runpod_provider,
    runpod_side,
    runpod_standin,
    side_of,
)
from tests.standins.modal import ModalStandin
from tests.standins.modal_worker import ModalWorkerStandin
from tests.standins.runpod import RunpodStandin

__all__ = [  # the stand-in fixtures, used by name
    "modal_side",
    "modal_standin",
    "runpod_side",
    "runpod_standin",
]

PHOTOS = 10
TRAINER_ENDPOINT = {"ostris/flux-lora-trainer": "ep-flux"}


class PhotoServer:
    """Signed-URL stand-in: serves the photos over loopback, records who fetched."""

    def __init__(self, photos: list[bytes]) -> None:
        self.photos = photos
        self.fetched: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                index = int(self.path.strip("/").split(".")[0])
                server.fetched.append(self.path)
                body = server.photos[index]
                self.send_response(200)
                self.send_header("content-type", "image/jpeg")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, index: int) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{index}.jpg?sig=x"


@pytest.fixture(scope="module")
def photos() -> Iterator[PhotoServer]:
    server = PhotoServer(distinct_face_jpegs(PHOTOS))
    server.thread.start()
    yield server
    server.httpd.shutdown()


def training_request(photos: PhotoServer, *, inline: bool = False, steps: int = 500) -> GpuRequest:
    keys = tuple(f"u/training/s/{n}.jpg" for n in range(PHOTOS))
    params = TrainingParams(
        photo_set_id=uuid.uuid4(),
        photo_keys=keys,
        steps=steps,
        trigger_word="ohwx",
        base_model="flux-schnell",
        name="Me",
        seed=11,
    )
    inputs = tuple(
        ProviderInput(
            name="photo",
            url=photos.url(n),
            content_type="image/jpeg",
            data=photos.photos[n] if inline else None,
        )
        for n in range(PHOTOS)
    )
    return GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="ostris/flux-lora-trainer",
        params=params,
        inputs=inputs,
        time_limit=3600,
    )


@pytest.fixture(
    params=[f"{k}-{s}-{o}" for k in ("runpod", "modal") for s in SIDES for o in ("base64", "url")]
    + ["local"]
)
async def trainer(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, GpuProvider]]:
    provider: GpuProvider
    if request.param == "local":
        provider = LocalGpuProvider("local", min_seconds=0.3)
    else:
        kind, side, output = request.param.split("-")
        standin = fresh(side_of(request, kind, side), output=output, job_seconds=0.4)
        if isinstance(standin, RunpodStandin):
            provider = runpod_provider(standin, endpoints=TRAINER_ENDPOINT)
        else:
            assert isinstance(standin, ModalStandin | ModalWorkerStandin)
            provider = modal_provider(standin)
    yield request.param, provider
    await provider.aclose()


def test_the_worker_input_names_every_photo_and_the_training_fields(photos: PhotoServer) -> None:
    request = training_request(photos)
    body = worker_input(request, name="test")
    assert body["kind"] == "training"
    assert (body["steps"], body["trigger_word"], body["base_model"], body["seed"]) == (
        500, "ohwx", "flux-schnell", 11)  # fmt: skip
    assert body["model"] == "ostris/flux-lora-trainer"
    assert [i["name"] for i in body["inputs"]] == ["photo"] * PHOTOS
    assert [i["url"] for i in body["inputs"]] == [photos.url(n) for n in range(PHOTOS)]
    assert "prompt" not in body and "width" not in body


async def test_a_training_reports_rising_steps_and_answers_weights_and_samples(
    trainer: tuple[str, GpuProvider], photos: PhotoServer
) -> None:
    kind, gpu = trainer
    request = training_request(photos, inline=kind == "local")

    status, pendings = await settle(gpu, await gpu.submit(request))

    assert isinstance(status, Completed), status
    progress = [p.progress for p in pendings if p.started]
    assert progress and progress == sorted(progress) and progress[-1] > 0
    weights = [o for o in status.outputs if o.role is OutputRole.WEIGHTS]
    samples = [o for o in status.outputs if o.role is OutputRole.RESULT]
    assert len(weights) == 1 and samples
    if kind.endswith("url"):
        assert weights[0].url is not None and weights[0].data is None
    assert check_lora(await gpu.fetch(weights[0])) == 3  # rank-4 pairs of three modules
    assert (await gpu.fetch(samples[0])).startswith(PNG_SIGNATURE)


async def test_the_remote_workers_download_every_photo_from_its_signed_url(
    runpod_side: RunpodStandin, photos: PhotoServer
) -> None:
    runpod_standin = runpod_side
    fresh(runpod_standin, job_seconds=0.05)
    gpu = runpod_provider(runpod_standin, endpoints=TRAINER_ENDPOINT)
    photos.fetched.clear()
    status, _ = await settle(gpu, await gpu.submit(training_request(photos)))
    await gpu.aclose()
    assert isinstance(status, Completed)
    assert sorted(photos.fetched) == sorted(f"/{n}.jpg?sig=x" for n in range(PHOTOS))
    sent = runpod_standin.run_bodies[-1]
    assert sent["policy"]["executionTimeout"] == 3_600_000  # the training's own hour


@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("kind", ["runpod", "modal"])
async def test_a_provider_failing_mid_training_is_an_infrastructure_failure(
    kind: str, side: str, request: pytest.FixtureRequest, photos: PhotoServer
) -> None:
    gpu: RunpodProvider | ModalProvider
    standin = fresh(side_of(request, kind, side), job_seconds=0.3, fail_with="infrastructure")
    if isinstance(standin, RunpodStandin):
        gpu = runpod_provider(standin, endpoints=TRAINER_ENDPOINT)
    else:
        assert isinstance(standin, ModalStandin | ModalWorkerStandin)
        gpu = modal_provider(standin)

    status, pendings = await settle(gpu, await gpu.submit(training_request(photos)))
    await gpu.aclose()

    assert any(p.started and p.progress > 0 for p in pendings)  # it had trained a while
    assert isinstance(status, Failed) and status.error.reason is FailureReason.INFRASTRUCTURE
