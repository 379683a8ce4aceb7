"""Trained models: what a training job makes, the weights it is checked against, and
how far a training has come."""

from __future__ import annotations

import enum
import json
import math
import struct
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.job_params import MAX_MODEL_NAME, TrainingParams
from genstudio.core.model.jobs import Job, JobStatus

#: the largest weights file a provider may hand back (a rank-128 Flux LoRA is ~600 MB;
#: what we train is rank 16-32, tens of MB)
MAX_WEIGHTS_BYTES = 1024 * 1024 * 1024
#: a safetensors header over this is not a LoRA's (the format's own cap is 100 MB)
MAX_HEADER_BYTES = 16 * 1024 * 1024

_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip


class TrainedModelStatus(enum.StrEnum):
    READY = "ready"  # its weights are stored: it can be generated with


class TrainedModel(msgspec.Struct, frozen=True, kw_only=True):
    """A user's personal LoRA. ``weights_key`` is its ``.safetensors`` file in media
    storage; ``thumbnail_key`` the first sample image the training made;
    ``photo_set_id`` the set it was trained from (kept while the model exists)."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    trigger_word: str
    base_model: str
    weights_key: str
    weights_bytes: int
    status: TrainedModelStatus
    thumbnail_key: str | None
    photo_set_id: uuid.UUID | None
    job_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime

    def renamed(self, name: str, now: datetime) -> TrainedModel:
        return msgspec.structs.replace(self, name=check_model_name(name), updated_at=now)


def check_model_name(name: str) -> str:
    """The name trimmed; raises InvalidInput (``name``) when blank or too long."""
    trimmed = name.strip()
    if not trimmed or len(trimmed) > MAX_MODEL_NAME or any(ord(c) < 32 for c in trimmed):
        raise InvalidInput(f"the name is 1-{MAX_MODEL_NAME} characters, not blank", field="name")
    return trimmed


def weights_key(user_id: uuid.UUID, model_id: uuid.UUID) -> str:
    """Under the owner's prefix, like every object of theirs."""
    return f"{user_id}/models/{model_id}.safetensors"


def safetensors_tensors(data: bytes) -> dict[str, tuple[str, tuple[int, ...]]]:
    """The tensors of a ``.safetensors`` file (name -> (dtype, shape)), checked: an
    8-byte little-endian header length, a JSON header, every tensor's byte range
    inside the file, in order, without gaps, and its size matching dtype and shape.

    Raises InvalidInput when the file is not a valid safetensors file.
    """
    if len(data) < 8:
        raise InvalidInput("the weights file is too short to be safetensors")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        raise InvalidInput("the weights file's safetensors header is out of bounds")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("the weights file's safetensors header is not JSON") from None
    if not isinstance(header, dict):
        raise InvalidInput("the weights file's safetensors header is not an object")
    body = len(data) - 8 - size
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    spans: list[tuple[int, int]] = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype, shape, offsets = _tensor(name, info)
        begin, end = offsets
        if not 0 <= begin <= end <= body or end - begin != _DTYPE_BYTES[dtype] * math.prod(shape):
            raise InvalidInput(f"the weights file's tensor {name!r} has a bad byte range")
        tensors[name] = (dtype, shape)
        spans.append((begin, end))
    if not tensors:
        raise InvalidInput("the weights file holds no tensors")
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise InvalidInput("the weights file's tensors overlap or leave gaps")
        position = end
    if position != body:
        raise InvalidInput("the weights file has bytes after its last tensor")
    return tensors


def _tensor(name: str, info: object) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    if not isinstance(info, dict):
        raise InvalidInput(f"the weights file's tensor {name!r} is not described")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if (
        dtype not in _DTYPE_BYTES
        or not isinstance(shape, list)
        or not all(isinstance(n, int) and n >= 0 for n in shape)
        or not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) for n in offsets)
    ):
        raise InvalidInput(f"the weights file's tensor {name!r} is malformed")
    return str(dtype), tuple(shape), (offsets[0], offsets[1])


def check_lora(data: bytes) -> int:
    """Check that ``data`` is a LoRA's weights: a valid safetensors file whose tensors
    come in down/up pairs (kohya's ``lora_down``/``lora_up`` or PEFT's
    ``lora_A``/``lora_B``). Returns the number of pairs; raises InvalidInput."""
    if len(data) > MAX_WEIGHTS_BYTES:
        raise InvalidInput(f"the weights file is larger than {MAX_WEIGHTS_BYTES} bytes")
    tensors = safetensors_tensors(data)
    pairs = 0
    for name in tensors:
        for down, up in ((".lora_down.", ".lora_up."), (".lora_A.", ".lora_B.")):
            if down in name:
                if name.replace(down, up) not in tensors:
                    raise InvalidInput(f"the weights file's {name!r} has no {up.strip('.')}")
                pairs += 1
    if not pairs:
        raise InvalidInput("the weights file holds no LoRA (down/up) tensors")
    return pairs


class TrainingProgress(msgspec.Struct, frozen=True, kw_only=True):
    """How far a training job has come, as the app shows it."""

    step: int
    total: int
    percent: int
    eta_seconds: int | None  # None until there is a rate to go by, and once it ended


def training_progress(job: Job, now: datetime) -> TrainingProgress:
    """Steps from the job's progress (the provider reports ``step``/``total``; the job
    keeps the percent, which only goes up within an attempt). The ETA extrapolates the
    attempt's pace since its provider accepted it."""
    params = job.params
    if not isinstance(params, TrainingParams):
        raise InvalidInput("not a training job", field="jobId")
    total = params.steps
    percent = 100 if job.status is JobStatus.SUCCEEDED else max(0, min(99, job.progress))
    step = total if percent == 100 else total * percent // 100
    eta: int | None = None
    if job.status is JobStatus.RUNNING and job.submitted_at is not None and 0 < percent < 100:
        elapsed = max(0.0, (now - job.submitted_at).total_seconds())
        eta = math.ceil(elapsed * (100 - percent) / percent)
    return TrainingProgress(step=step, total=total, percent=percent, eta_seconds=eta)
