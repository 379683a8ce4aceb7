"""The Modal app genstudio calls (docs/providers.md §3).

    modal deploy -m gpu_worker.modal_app        # from the repository root

deploys two functions: ``generate`` (the GPU function: one job's §1 input to its §1
output, on the diffusers engine) and ``web`` (the four endpoints of
``gpu_worker.web`` as one ASGI app behind Modal's proxy auth, at
``https://<workspace>--genstudio-gpu.modal.run``: genstudio's ``MODAL_BASE_URL``).
Progress lives in a ``modal.Dict`` keyed by call id. Settings at deploy time:

- ``GPU_WORKER_MODAL_APP`` (``genstudio-gpu``): the app's name
- ``GPU_WORKER_MODAL_GPU`` (``H100``): the GPU type of ``generate``
- ``GPU_WORKER_MODAL_TIMEOUT`` (3900 s): its time limit (a training is allowed an hour)
- ``GPU_WORKER_MODAL_SECRET``: a Modal secret to expose to ``generate`` (output
  bucket credentials, ``GPU_WORKER_S3_BUCKET``, ``HF_TOKEN`` for gated models)
"""

from __future__ import annotations

import os
from typing import Any

import modal

from gpu_worker.web import create_app

APP_NAME = os.environ.get("GPU_WORKER_MODAL_APP", "genstudio-gpu")
GPU = os.environ.get("GPU_WORKER_MODAL_GPU", "H100")
TIMEOUT = int(os.environ.get("GPU_WORKER_MODAL_TIMEOUT", "3900"))
SECRET = os.environ.get("GPU_WORKER_MODAL_SECRET")
MODELS_PATH = "/models"

app = modal.App(APP_NAME)

_base = modal.Image.debian_slim(python_version="3.11").pip_install(
    "msgspec>=0.19", "httpx>=0.27", "starlette>=0.37"
)
web_image = _base.add_local_python_source("gpu_worker")
gpu_image = (
    _base.pip_install(
        "pillow>=10",
        "numpy>=1.26",
        "safetensors>=0.4",
        "av>=12",
        "boto3>=1.34",
        "torch>=2.4",
        "diffusers>=0.40",
        "transformers>=4.44",
        "accelerate>=0.34",
        "peft>=0.13",
        "sentencepiece>=0.2",
        "protobuf>=4",
        "ftfy>=6",  # Wan's image-to-video pipeline calls it unchecked (pyproject.toml)
    )
    .env({"GPU_WORKER_ENGINE": "diffusers", "HF_HOME": f"{MODELS_PATH}/hf"})
    .add_local_python_source("gpu_worker")
)

#: each call's progress ({"started", "progress" | "step"/"total"}) and cancellation
progress = modal.Dict.from_name(f"{APP_NAME}-progress", create_if_missing=True)
#: model weights, downloaded once and kept between containers
models = modal.Volume.from_name(f"{APP_NAME}-models", create_if_missing=True)


@app.function(
    image=gpu_image,
    gpu=GPU,
    timeout=TIMEOUT,
    volumes={MODELS_PATH: models},
    secrets=[modal.Secret.from_name(SECRET)] if SECRET else [],
)
def generate(job: dict[str, Any]) -> dict[str, Any]:
    from gpu_worker.calls import run_call
    from gpu_worker.worker import worker_from_env

    global _worker
    if _worker is None:  # once per container: the engine keeps its pipelines loaded
        _worker = worker_from_env()
    call_id = modal.current_function_call_id() or ""
    return run_call(job, call_id=call_id, records=progress, worker=_worker)


_worker: Any = None


class ModalCalls:
    """``Calls`` (gpu_worker.web) over the deployed ``generate``."""

    def __init__(self, function: modal.Function[Any, Any, Any]) -> None:
        self.function = function

    async def spawn(self, job: dict[str, Any]) -> str:
        call = await self.function.spawn.aio(job)
        return str(call.object_id)

    async def get(self, call_id: str) -> Any:
        return await modal.FunctionCall.from_id(call_id).get.aio(timeout=0)

    async def cancel(self, call_id: str) -> None:
        await modal.FunctionCall.from_id(call_id).cancel.aio()

    async def stats(self) -> tuple[int, int]:
        current = await self.function.get_current_stats.aio()
        return current.backlog, current.num_total_runners


class ModalRecords:
    """``Records`` (gpu_worker.web) over the progress ``modal.Dict``."""

    def __init__(self, records: modal.Dict) -> None:
        self.records = records

    async def get(self, key: str) -> Any:
        return await self.records.get.aio(key)

    async def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> None:
        await self.records.put.aio(key, value, skip_if_exists=skip_if_exists)


@app.function(image=web_image)
@modal.asgi_app(label=APP_NAME, requires_proxy_auth=True)
def web() -> Any:
    return create_app(ModalCalls(generate), ModalRecords(progress), detail=f"modal {APP_NAME}")
