"""The GPU worker's own rules (gpu_worker/), without a platform: the contract's input
checks, how progress is reported, how outputs travel, the controls file, and the
diffusers engine refusing a model it does not serve before anything is loaded."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest

from gpu_worker.contract import BadInput, EditJob, ImageJob, JobCancelled, VideoJob, parse_job
from gpu_worker.controls import Controls, controls_from_env, read_controls, write_controls
from gpu_worker.diffusion import DiffusersEngine
from gpu_worker.outputs import DirectoryStore, Outputs
from gpu_worker.preview import PreviewEngine
from gpu_worker.worker import Throttle, Worker


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ({"kind": "audio", "prompt": "x"}, "does not make 'audio' jobs"),
        ({"kind": "image", "prompt": "x", "width": 4096, "height": 64}, "$.width"),
        ({"kind": "image", "prompt": "x", "num_outputs": 5}, "$.num_outputs"),
        ({"kind": "image", "prompt": "   "}, "the prompt is empty"),
        ({"kind": "image", "prompt": "x" * 2001}, "$.prompt"),
        ({"kind": "edit", "prompt": "x", "width": 64, "height": 64}, "its image"),
        ({"kind": "video", "prompt": "x", "width": 855, "height": 480}, "even sides"),
        (
            {"kind": "video", "prompt": "x", "input_type": "keyframes", "width": 64, "height": 64},
            "'first_frame'",
        ),
        ({"kind": "training", "steps": 10, "trigger_word": "ohwx"}, "its photos"),
        ("not an object", "not a JSON object"),
    ],
)
def test_an_input_out_of_the_contract_is_refused_saying_why(raw: object, why: str) -> None:
    with pytest.raises(BadInput) as refused:
        parse_job(raw)
    assert why in str(refused.value)


def test_unknown_fields_are_ignored_and_the_legacy_url_fields_still_name_inputs() -> None:
    edit = parse_job({"kind": "edit", "prompt": "a boat", "width": 96, "height": 64,
                      "image_url": "https://s/i.png", "mask_url": "https://s/m.png",
                      "someday": {"new": "field"}})  # fmt: skip
    assert isinstance(edit, EditJob)
    assert (edit.urls("image"), edit.urls("mask")) == (["https://s/i.png"], ["https://s/m.png"])
    listed = parse_job({"kind": "video", "prompt": "a kite", "width": 64, "height": 64,
                        "input_type": "image", "image_url": "https://s/old.png",
                        "inputs": [{"name": "image", "url": "https://s/new.png"}]})  # fmt: skip
    assert isinstance(listed, VideoJob) and listed.urls("image") == ["https://s/new.png"]
    assert isinstance(parse_job({"prompt": "no kind: an image"}), ImageJob)


def test_progress_is_sent_only_when_it_rose_and_not_more_often_than_the_interval() -> None:
    sent: list[dict[str, int]] = []
    percent = Throttle(sent.append, interval=0.0, steps=False)
    for done in (0, 1, 1, 3, 2, 4):
        percent(done, 4)
    assert sent == [{"progress": 0}, {"progress": 25}, {"progress": 75}, {"progress": 100}]

    sent.clear()
    steps = Throttle(sent.append, interval=3600.0, steps=True)
    for step in range(1, 500):
        steps(step, 500)
    assert sent == [{"step": 1, "total": 500}]  # then nothing for an hour


def test_outputs_travel_inline_up_to_the_threshold_and_by_url_above_it(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path, "https://cdn.example/files")
    outputs = Outputs(store, inline_max_bytes=4, job_id="job/../1")
    small, large = (
        outputs.file(b"tiny", "image/png", ".png"),
        outputs.file(b"large!", "video/mp4", ".mp4"),
    )

    assert small == {"base64": base64.b64encode(b"tiny").decode(), "content_type": "image/png"}
    assert large["content_type"] == "video/mp4"
    key = large["url"].removeprefix("https://cdn.example/files/")
    assert key.startswith("job1/") and key.endswith("/1.mp4")  # the job id made safe
    assert (tmp_path / key).read_bytes() == b"large!"
    assert "base64" in Outputs(None, inline_max_bytes=0, job_id="j").file(b"x", "image/png", ".png")


def test_the_controls_file_is_read_again_for_every_job(tmp_path: Path) -> None:
    path = tmp_path / "controls.json"
    source = controls_from_env({"GPU_WORKER_CONTROLS": str(path)})
    assert source() == Controls()  # no file yet: the defaults

    write_controls(path, Controls(seconds=0.5, fail="content"))

    assert source() == read_controls(path) == Controls(seconds=0.5, fail="content")
    fixed = controls_from_env(
        {"GPU_WORKER_INLINE_MAX_BYTES": "10", "GPU_WORKER_PREVIEW_SECONDS": "2"}
    )
    assert fixed() == Controls(inline_max_bytes=10, seconds=2.0)


def test_a_cancelled_job_stops_the_preview_engine_at_its_next_check() -> None:
    cancelled = threading.Event()
    worker = Worker(engine=PreviewEngine(lambda: Controls(stuck=True)), progress_interval=0.0)
    timer = threading.Timer(0.1, cancelled.set)
    timer.start()

    with pytest.raises(JobCancelled):
        worker.run({"prompt": "a fox", "width": 64, "height": 64}, report=lambda u: None,
                   cancelled=cancelled)  # fmt: skip


def test_the_diffusers_engine_refuses_a_model_it_does_not_serve_before_loading_anything() -> None:
    engine = DiffusersEngine(models=frozenset({"black-forest-labs/FLUX.1-schnell"}))
    worker = Worker(engine=engine)

    # BadInput, not ModuleNotFoundError: torch and diffusers (not installed here) were
    # never imported
    with pytest.raises(BadInput, match="GPU_WORKER_MODELS"):
        worker.run({"prompt": "a fox", "width": 64, "height": 64, "model": "someone/else"},
                   report=lambda u: None)  # fmt: skip
