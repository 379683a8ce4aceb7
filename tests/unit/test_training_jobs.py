"""Training jobs' rules: the parameters a training accepts, its price per hundred
steps, the weights it must hand back, how far it has come, and the CPU trainer."""

from __future__ import annotations

import io
import json
import struct
import uuid
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load, save

from genstudio.adapters.gpu_local.trainer import train_lora
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.job_params import ImageParams, JobInput, TrainingParams
from genstudio.core.model.jobs import Job, JobStatus
from genstudio.core.model.pricing import DEFAULT_CATALOG, ModelKind
from genstudio.core.model.training.models import (
    TrainedModel,
    TrainedModelStatus,
    check_lora,
    check_model_name,
    safetensors_tensors,
    training_progress,
)

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
KEYS = tuple(f"u/training/s/{n}.jpg" for n in range(12))
RULES: dict[str, object] = {
    "allowed_steps": (500, 1000, 1500, 2000),
    "base_models": ("flux-schnell",),
    "min_photos": 10,
}


def params(**changes: object) -> TrainingParams:
    given: dict[str, object] = {
        "photo_set_id": uuid.uuid4(),
        "photo_keys": KEYS,
        "steps": 1000,
        "trigger_word": "ohwx",
        "base_model": "flux-schnell",
        "name": "Me",
    }
    return TrainingParams(**(given | changes))  # type: ignore[arg-type]


def refused_field(p: TrainingParams) -> str | None:
    with pytest.raises(InvalidInput) as refused:
        p.validate(**RULES)  # type: ignore[arg-type]
    return refused.value.field


def test_valid_training_params_list_every_accepted_photo_as_a_photo_input() -> None:
    p = params()
    p.validate(**RULES)  # type: ignore[arg-type]
    assert p.inputs() == tuple(JobInput("photo", k, "image/jpeg") for k in KEYS)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": 750}, "steps"),
        ({"steps": 0}, "steps"),
        ({"trigger_word": "a"}, "trigger_word"),
        ({"trigger_word": "two words"}, "trigger_word"),
        ({"trigger_word": "9lives"}, "trigger_word"),
        ({"trigger_word": "x" * 33}, "trigger_word"),
        ({"base_model": "sdxl"}, "base_model"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "bad\x00name"}, "name"),
        ({"seed": -1}, "seed"),
        ({"photo_keys": KEYS[:9]}, "photo_set_id"),
    ],
)
def test_training_params_name_the_field_at_fault(changes: dict[str, object], field: str) -> None:
    assert refused_field(params(**changes)) == field


def test_too_few_photos_says_how_many_were_accepted() -> None:
    with pytest.raises(InvalidInput, match="has 3 accepted photos; training needs at least 10"):
        params(photo_keys=KEYS[:3]).validate(**RULES)  # type: ignore[arg-type]


def test_training_params_survive_the_job_union_round_trip() -> None:
    p = params(seed=5)
    job_params = msgspec.json.decode(msgspec.json.encode(p), type=ImageParams | TrainingParams)
    assert job_params == p


def test_a_training_is_priced_per_started_hundred_steps_of_the_offered_counts() -> None:
    assert [DEFAULT_CATALOG.training_price("flux-lora", s) for s in (500, 1000, 2000)] == [
        50, 100, 200]  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        DEFAULT_CATALOG.training_price("flux-lora", 750)
    assert refused.value.field == "steps"
    with pytest.raises(InvalidInput) as wrong_kind:
        DEFAULT_CATALOG.training_price("flux-schnell", 500)
    assert wrong_kind.value.field == "model"
    assert DEFAULT_CATALOG.get("flux-lora", ModelKind.TRAINING).bases == ("flux-schnell",)


def test_a_lora_scale_outside_0_to_2_is_refused_and_the_weights_are_a_lora_input() -> None:
    with pytest.raises(InvalidInput) as refused:
        ImageParams(prompt="p", lora_scale=2.5).validate(
            max_count=4, max_width=2048, max_height=2048
        )
    assert refused.value.field == "lora_scale"
    with_lora = ImageParams(prompt="p", lora_id=uuid.uuid4(), lora_key="u/models/m.safetensors")
    assert [i.name for i in with_lora.inputs()] == ["lora"]
    assert ImageParams(prompt="p").inputs() == ()


def lora_file(**extra: np.ndarray) -> bytes:
    tensors = {
        "m.lora_down.weight": np.ones((4, 8), dtype=np.float32),
        "m.lora_up.weight": np.ones((8, 4), dtype=np.float32),
    }
    return save(tensors | extra)


def test_a_lora_safetensors_file_passes_and_reads_its_tensors() -> None:
    data = lora_file()
    assert check_lora(data) == 1
    assert safetensors_tensors(data)["m.lora_down.weight"] == ("F32", (4, 8))


@pytest.mark.parametrize(
    "broken",
    [
        b"",
        b"\x00" * 7,
        struct.pack("<Q", 10**9) + b"{}",
        struct.pack("<Q", 2) + b"[]",
        struct.pack("<Q", 2) + b"{}",
        b"\x89PNG\r\n\x1a\n" + b"x" * 100,
    ],
)
def test_what_is_not_safetensors_is_refused(broken: bytes) -> None:
    with pytest.raises(InvalidInput):
        check_lora(broken)


def test_a_tensor_pointing_outside_the_file_or_a_lone_half_is_refused() -> None:
    header = json.dumps(
        {"m.lora_down.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 4096]}}
    ).encode()
    with pytest.raises(InvalidInput, match="byte range"):
        check_lora(struct.pack("<Q", len(header)) + header + b"\x00" * 128)
    lone = save({"m.lora_down.weight": np.ones((4, 8), dtype=np.float32)})
    with pytest.raises(InvalidInput, match="no lora_up"):
        check_lora(lone)
    with pytest.raises(InvalidInput, match="no LoRA"):
        check_lora(save({"w": np.ones(3, dtype=np.float32)}))


def training_job(status: JobStatus, progress: int, **changes: object) -> Job:
    fields: dict[str, object] = {
        "id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "kind": ModelKind.TRAINING,
        "model_id": "flux-lora",
        "params": params(steps=1000),
        "cost": 100,
        "hold_id": None,
        "status": status,
        "created_at": NOW,
        "updated_at": NOW,
        "progress": progress,
    }
    return Job(**(fields | changes))  # type: ignore[arg-type]


def test_progress_shows_steps_percent_and_an_eta_from_the_attempts_pace() -> None:
    running = training_job(JobStatus.RUNNING, 25, submitted_at=NOW - timedelta(seconds=60))
    progress = training_progress(running, NOW)
    assert (progress.step, progress.total, progress.percent, progress.eta_seconds) == (
        250, 1000, 25, 180)  # fmt: skip
    queued = training_progress(training_job(JobStatus.QUEUED, 0), NOW)
    assert (queued.step, queued.eta_seconds) == (0, None)
    done = training_progress(training_job(JobStatus.SUCCEEDED, 100), NOW)
    assert (done.step, done.percent, done.eta_seconds) == (1000, 100, None)


def test_progress_never_goes_back_within_an_attempt() -> None:
    job = training_job(JobStatus.RUNNING, 40)
    assert job.report_progress(30, NOW).progress == 40
    assert job.report_progress(55, NOW).progress == 55


def test_a_model_is_renamed_trimmed_and_a_blank_name_is_refused() -> None:
    model = TrainedModel(
        id=uuid.uuid4(), user_id=uuid.uuid4(), name="Me", trigger_word="ohwx",
        base_model="flux-schnell", weights_key="k", weights_bytes=1,
        status=TrainedModelStatus.READY, thumbnail_key=None, photo_set_id=None,
        job_id=None, created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    assert model.renamed("  Me again ", NOW + timedelta(1)).name == "Me again"
    with pytest.raises(InvalidInput) as refused:
        check_model_name("  ")
    assert refused.value.field == "name"


def photo(seed: int) -> bytes:
    pixels = (np.random.default_rng(seed).random((64, 64, 3)) * 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def test_the_cpu_trainer_fits_its_lora_to_the_photos_and_writes_valid_safetensors() -> None:
    photos = [photo(n) for n in range(10)]
    seen: list[int] = []
    weights, sample, loss = train_lora(
        photos, steps=200, trigger_word="ohwx", seed=3, on_step=seen.append
    )
    _, _, first_loss = train_lora(photos, steps=1, trigger_word="ohwx", seed=3)
    assert seen == list(range(1, 201))
    assert loss < first_loss  # it really trains
    assert check_lora(weights) == 3
    tensors = load(weights)
    down = tensors["lora_unet_single_blocks_0_linear1.lora_down.weight"]
    assert down.shape == (4, 64) and down.dtype == np.float32
    assert sample.startswith(b"\x89PNG")
    # the same photos and seed train the same tensors (the header's key order may vary)
    again = load(train_lora(photos, steps=200, trigger_word="ohwx", seed=3)[0])
    assert all(np.array_equal(again[name], value) for name, value in tensors.items())
