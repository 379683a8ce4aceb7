"""What only our GPU worker (gpu_worker/) is asked beyond the image contract, through
genstudio's own adapters and each platform: edits keep every pixel outside the mask,
videos are MP4s of the asked length with a poster, a user's LoRA is applied at its
scale, inputs it refuses fail at once, cancelled jobs free the worker; and the Runpod
handler also answers through runpod-python's own local test server (--rp_serve_api).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from genstudio.adapters.gpu_modal import ModalProvider
from genstudio.adapters.gpu_runpod import RunpodProvider
from genstudio.core.model.job_params import EditParams, ImageParams, VideoInput, VideoParams
from genstudio.core.model.jobs import FailureReason
from genstudio.core.model.media import mp4_info, png_dimensions
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuRequest,
    OutputRole,
    ProviderInput,
    ProviderUnavailable,
)
from gpu_worker.preview.train import train
from tests.contract.test_gpu_provider import image_request, settle
from tests.contract.test_gpu_remote_providers import fresh, modal_provider, runpod_provider
from tests.standins.modal_worker import ModalWorkerStandin
from tests.standins.runpod_worker import ROOT, RunpodWorkerStandin, handler_command

Provider = RunpodProvider | ModalProvider


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


PICTURE = _png(Image.new("RGB", (96, 64), (30, 120, 200)))
_mask = Image.new("L", (96, 64), 0)
ImageDraw.Draw(_mask).rectangle((20, 10, 59, 39), fill=255)
MASK = _png(_mask)
LORA = train([PICTURE, _png(Image.new("RGB", (96, 64), (200, 40, 10)))], steps=5,
             trigger_word="ohwx", seed=1, on_step=lambda step: None)  # fmt: skip


class Files:
    """Signed URLs' stand-in: serves the job's uploads on loopback, without credentials."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("content-length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def input(self, name: str, data: bytes, content_type: str = "image/png") -> ProviderInput:
        path = f"/{uuid.uuid4().hex}/{name}"
        self.files[path] = data
        url = f"http://127.0.0.1:{self.httpd.server_address[1]}{path}?sig=x"
        return ProviderInput(name=name, url=url, content_type=content_type)


@pytest.fixture(scope="module")
def files() -> Iterator[Files]:
    served = Files()
    yield served
    served.httpd.shutdown()


@pytest.fixture(params=["runpod", "modal"])
async def worker(
    request: pytest.FixtureRequest,
    runpod_worker: RunpodWorkerStandin,
    modal_worker: ModalWorkerStandin,
) -> AsyncIterator[Provider]:
    """genstudio's adapter in front of our worker, jobs quick (0.05 s of pacing)."""
    provider: Provider
    if request.param == "runpod":
        fresh(runpod_worker, job_seconds=0.05)
        provider = runpod_provider(runpod_worker, endpoints={"*": "ep-flux"}, timeout=5.0)
    else:
        fresh(modal_worker, job_seconds=0.05)
        provider = modal_provider(modal_worker, timeout=5.0)
    yield provider
    await provider.aclose()


async def test_an_edit_repaints_the_mask_and_keeps_every_other_pixel(
    worker: Provider, files: Files
) -> None:
    params = EditParams(prompt="a paper boat", image_key="u/i.png", mask_key="u/m.png",
                        width=96, height=64, seed=3)  # fmt: skip
    request = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="inpaint",
        params=params,
        inputs=(files.input("image", PICTURE), files.input("mask", MASK)),
    )

    status, _ = await settle(worker, await worker.submit(request))

    assert isinstance(status, Completed), status
    [output] = status.outputs
    edited = np.asarray(Image.open(io.BytesIO(await worker.fetch(output))).convert("RGB"))
    original = np.asarray(Image.open(io.BytesIO(PICTURE)).convert("RGB"))
    outside = np.asarray(Image.open(io.BytesIO(MASK))) < 128
    assert edited.shape == (64, 96, 3)
    assert (edited[outside] == original[outside]).all()
    assert (edited[~outside] != original[~outside]).any()  # inside: repainted


@pytest.mark.parametrize("input_type", [VideoInput.TEXT, VideoInput.KEYFRAMES])
async def test_a_video_is_an_mp4_of_the_asked_length_and_size_with_its_poster(
    worker: Provider, files: Files, input_type: VideoInput
) -> None:
    keyframes = input_type is VideoInput.KEYFRAMES
    params = VideoParams(
        prompt="a kite over a beach",
        input_type=input_type,
        duration_seconds=2,
        fps=8,
        first_frame_key="u/a.png" if keyframes else None,
        last_frame_key="u/b.png" if keyframes else None,
    )
    inputs = (
        (files.input("first_frame", PICTURE), files.input("last_frame", MASK)) if keyframes else ()
    )
    request = GpuRequest(job_id=uuid.uuid4(), provider_model="video", params=params, inputs=inputs)

    status, _ = await settle(worker, await worker.submit(request))

    assert isinstance(status, Completed), status
    [video] = [o for o in status.outputs if o.role is OutputRole.RESULT]
    [poster] = [o for o in status.outputs if o.role is OutputRole.POSTER]
    info = mp4_info(await worker.fetch(video))
    assert info is not None
    assert (info.duration_seconds, info.width, info.height, info.frames) == (2.0, 854, 480, 16)
    assert png_dimensions(await worker.fetch(poster)) == (854, 480)


async def test_a_users_lora_is_applied_at_its_scale(worker: Provider, files: Files) -> None:
    async def render(scale: float | None) -> bytes:
        lora = () if scale is None else (files.input("lora", LORA, "application/octet-stream"),)
        params = ImageParams(prompt="a portrait", width=64, height=64, seed=5,
                             lora_key=None if scale is None else "u/models/m.safetensors",
                             lora_scale=1.0 if scale is None else scale)  # fmt: skip
        request = GpuRequest(
            job_id=uuid.uuid4(), provider_model="preview", params=params, inputs=lora
        )
        status, _ = await settle(worker, await worker.submit(request))
        assert isinstance(status, Completed), status
        return await worker.fetch(status.outputs[0])

    plain, unscaled, applied = await render(None), await render(0.0), await render(1.5)

    assert unscaled == plain  # at scale 0 the LoRA changes nothing
    assert applied != plain


async def test_a_broken_lora_fails_the_job_as_an_infrastructure_error(
    worker: Provider, files: Files
) -> None:
    params = ImageParams(prompt="a portrait", width=64, height=64, lora_key="u/m.safetensors")
    request = GpuRequest(
        job_id=uuid.uuid4(),
        provider_model="preview",
        params=params,
        inputs=(files.input("lora", b"not a safetensors file", "application/octet-stream"),),
    )

    status, _ = await settle(worker, await worker.submit(request))

    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.INFRASTRUCTURE


async def test_an_input_the_worker_refuses_fails_at_submission_or_at_once(
    worker: Provider,
) -> None:
    """An image wider than the contract's 2048: Modal's /submit refuses it (422, so the
    adapter fails over), Runpod's handler answers an error (FAILED, infrastructure)."""
    params = ImageParams(prompt="a very wide picture", width=4096, height=64)
    request = GpuRequest(job_id=uuid.uuid4(), provider_model="preview", params=params)
    if isinstance(worker, ModalProvider):
        with pytest.raises(ProviderUnavailable, match="422"):
            await worker.submit(request)
        return
    status, _ = await settle(worker, await worker.submit(request))
    assert isinstance(status, Failed)
    assert status.error.reason is FailureReason.INFRASTRUCTURE
    assert "refused the input" in status.error.message


async def test_cancelled_jobs_free_the_worker_for_the_next(
    runpod_worker: RunpodWorkerStandin,
) -> None:
    """As many stuck jobs as the worker runs at once, cancelled: runpod-python's stop
    channel cancels each handler and the engine stops, so the next job runs."""
    fresh(runpod_worker, stuck=True)
    provider = runpod_provider(runpod_worker, endpoints={"*": "ep-flux"}, timeout=5.0)
    stuck = [await provider.submit(image_request()) for _ in range(runpod_worker.concurrency)]
    deadline = time.monotonic() + 10
    while runpod_worker.job_counts()["inProgress"] < len(stuck):
        assert time.monotonic() < deadline, "the worker did not take every stuck job"
        await asyncio.sleep(0.01)
    for job in stuck:
        await provider.cancel(job)
    assert all([isinstance(await provider.poll(job), Cancelled) for job in stuck])

    fresh(runpod_worker, job_seconds=0.05)
    status, _ = await settle(provider, await provider.submit(image_request()))

    assert isinstance(status, Completed)
    await provider.aclose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_runpod_handler_answers_through_runpod_pythons_own_test_server(
    tmp_path: Path,
) -> None:
    """``python -m gpu_worker.runpod_handler --rp_serve_api``: runpod-python's local test
    server (its /runsync runs the handler in the request) answers the §1 output."""
    port = _free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "GPU_WORKER_"))},
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "GPU_WORKER_ENGINE": "preview",
        "UVICORN_LOG_LEVEL": "warning",
    }
    command = handler_command(
        "--rp_serve_api", "--rp_api_host", "127.0.0.1", "--rp_api_port", str(port)
    )
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        job = {"kind": "image", "prompt": "a lighthouse", "width": 96, "height": 64,
               "num_outputs": 2, "seed": 4}  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/runsync", json={"input": job}, timeout=30
                )
                break
            except httpx.ConnectError:
                assert process.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, "runpod-python's test server never started"
                time.sleep(0.1)
        body = answer.json()
        assert body["status"] == "COMPLETED", body
        images = [base64.b64decode(i["base64"]) for i in body["output"]["images"]]
        assert [png_dimensions(i) for i in images] == [(96, 64), (96, 64)]
        refused = httpx.post(
            f"http://127.0.0.1:{port}/runsync", json={"input": {"kind": "audio"}}, timeout=30
        ).json()
        assert refused["status"] == "FAILED"
        assert "does not make 'audio' jobs" in json.dumps(refused)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def test_the_modal_app_defines_the_gpu_function_and_the_web_endpoints() -> None:
    """The deployable module imports without Modal credentials and defines both."""
    import modal

    from gpu_worker import modal_app

    assert isinstance(modal_app.generate, modal.Function)
    assert isinstance(modal_app.web, modal.Function)
    assert modal_app.app.name == "genstudio-gpu"
