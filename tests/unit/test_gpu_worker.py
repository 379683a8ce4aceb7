"""The GPU worker's own rules (gpu_worker/), without a platform: the contract's input
checks, how progress is reported, how outputs travel, the controls file, and the
diffusers engine refusing a model it does not serve or a video longer than its model's
window before anything is loaded, how it plans a video's frames, and how it makes a
negative prompt count."""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import pytest

from gpu_worker.contract import BadInput, EditJob, ImageJob, JobCancelled, VideoJob, parse_job
from gpu_worker.controls import Controls, controls_from_env, read_controls, write_controls
from gpu_worker.diffusion import DiffusersEngine, frame_plan
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


@pytest.mark.parametrize(
    ("seconds", "fps", "made"),
    [(1, 8, 17), (1, 24, 17), (2, 4, 33), (5, 16, 81), (5, 30, 81), (3, 60, 49)],
)
def test_a_video_is_made_at_the_models_own_rate_and_picked_to_the_jobs_frames(
    seconds: int, fps: int, made: int
) -> None:
    plan = frame_plan(seconds, fps)  # Wan 2.1: 16 fps, 81 frames at most

    assert plan.made == made == seconds * 16 + 1  # 4k+1, the duration at 16 fps
    assert len(plan.shown) == seconds * fps  # the file's frames: duration * fps
    assert plan.shown[0] == 0 and plan.shown[-1] == made - 1  # from first to last
    assert list(plan.shown) == sorted(plan.shown)  # time only goes forward
    steps = {b - a for a, b in zip(plan.shown, plan.shown[1:], strict=False)}
    assert max(steps, default=0) <= -(-16 // fps) + 1  # no jump past the model's pace


def test_at_the_models_own_rate_no_made_frame_is_shown_twice() -> None:
    plan = frame_plan(5, 16)

    assert len(set(plan.shown)) == len(plan.shown) == 80  # of the 81 made, over 5 s


def test_a_model_rate_not_a_multiple_of_four_is_rounded_up_to_4k_plus_1() -> None:
    assert frame_plan(1, 24, model_fps=25, max_frames=121).made == 29


@pytest.mark.parametrize(("seconds", "fps"), [(6, 16), (10, 8), (30, 16)])
def test_a_duration_beyond_the_models_window_is_refused_saying_the_longest(
    seconds: int, fps: int
) -> None:
    with pytest.raises(BadInput, match=f"at most 5 s .81 frames at its 16 fps., not {seconds} s"):
        frame_plan(seconds, fps)


def test_a_longer_window_is_a_setting() -> None:
    env = {"GPU_WORKER_VIDEO_FPS": "24", "GPU_WORKER_VIDEO_MAX_FRAMES": "241"}
    engine = DiffusersEngine.from_env(env)

    assert (engine.video_fps, engine.video_max_frames) == (24, 241)
    assert frame_plan(10, 16, model_fps=24, max_frames=241).made == 241


def test_the_diffusers_engine_refuses_a_long_video_before_fetching_or_loading() -> None:
    fetched: list[str] = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return b""

    worker = Worker(engine=DiffusersEngine(), fetch=fetch)
    job = {"kind": "video", "prompt": "a kite", "width": 64, "height": 64, "fps": 16,
           "duration_seconds": 30, "input_type": "image", "model": "Wan-AI/Wan2.1-I2V-14B-480P",
           "inputs": [{"name": "image", "url": "https://s/i.png"}]}  # fmt: skip

    # BadInput, not ModuleNotFoundError: torch and diffusers were never imported
    with pytest.raises(BadInput, match="at most 5 s"):
        worker.run(job, report=lambda u: None)
    assert fetched == []


def test_a_negative_prompt_turns_on_true_cfg_and_a_blank_one_is_none() -> None:
    engine = DiffusersEngine.from_env({"GPU_WORKER_TRUE_CFG_SCALE": "3.5"})

    assert engine._negative("blurry") == {"negative_prompt": "blurry", "true_cfg_scale": 3.5}
    assert engine._negative("") == engine._negative("  ") == {}
    assert DiffusersEngine().true_cfg_scale == 4.0


def test_modal_result_says_why_the_engine_refused_an_input() -> None:
    from starlette.testclient import TestClient

    from gpu_worker.web import create_app

    class Calls:
        async def spawn(self, job: dict[str, Any]) -> str:
            return "c1"

        async def get(self, call_id: str) -> Any:
            raise BadInput("this video model makes at most 5 s")

        async def cancel(self, call_id: str) -> None:
            pass

        async def stats(self) -> tuple[int, int]:
            return 0, 0

    class Records:
        def __init__(self) -> None:
            self.kept: dict[str, Any] = {"c1": {"started": True}}

        async def get(self, key: str) -> Any:
            return self.kept.get(key)

        async def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> None:
            self.kept[key] = value

    with TestClient(create_app(Calls(), Records())) as client:
        body = client.get("/result/c1").json()

    assert body == {
        "status": "failed",
        "error": "the GPU worker refused the input: this video model makes at most 5 s",
        "error_type": "infrastructure",  # retried elsewhere, then failed: not content
    }
