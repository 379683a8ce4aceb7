"""The CPU preview engine: real PNG, MP4 and .safetensors files, no model, no GPU.

For tests and local trials of the whole journey. Its controls (``gpu_worker.controls``)
pace each job over ``seconds`` with rising progress, keep it running for ever
(``stuck``) or fail it at its end (``fail``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from PIL import Image

from gpu_worker.contract import ContentPolicyError, EditJob, ImageJob, TrainingJob, VideoJob
from gpu_worker.controls import Controls, ControlSource
from gpu_worker.engine import Context, Lora, Video
from gpu_worker.preview.render import inpaint, picture, png, tinted
from gpu_worker.preview.train import lora_colour, train
from gpu_worker.preview.video import encode_mp4, frames_of

__all__ = ["PreviewEngine"]

TICK = 0.01


class _Pace:
    """Spreads a job over the controls' ``seconds``, reporting as it goes: in percent
    (images, edits, videos) or in the job's own units (a training's steps)."""

    def __init__(self, ctx: Context, controls: Controls, *, percent: bool = True) -> None:
        self.ctx = ctx
        self.controls = controls
        self.percent = percent
        self.began = time.monotonic()

    def _report(self, fraction: float, total: int) -> None:
        if self.percent:
            self.ctx.progress(int(100 * fraction), 100)
        else:
            self.ctx.progress(int(total * fraction), total)

    def to(self, done: int, total: int) -> None:
        """Wait until ``done / total`` of the time passed, reporting on the way."""
        seconds = self.controls.seconds
        end = self.began + seconds * done / total
        while (now := time.monotonic()) < end:
            self._report(min((now - self.began) / seconds, done / total), total)
            time.sleep(min(TICK, end - now))
        self._report(done / total, total)

    def end(self) -> None:
        """What the controls ask of a finished job: hang on, or fail."""
        while self.controls.stuck:
            self.ctx.check()
            time.sleep(TICK)
        if self.controls.fail == "content":
            raise ContentPolicyError(
                "the preview engine refuses this job (told to by its controls)"
            )
        if self.controls.fail == "infrastructure":
            raise RuntimeError("the preview engine failed this job (told to by its controls)")


class PreviewEngine:
    name = "preview"

    def __init__(self, controls: ControlSource = Controls) -> None:
        self.controls = controls

    def image(self, job: ImageJob, ctx: Context) -> list[bytes]:
        lora = ctx.fetch(job.urls("lora"))  # inputs first: the pace is the work's
        pace = _Pace(ctx, self.controls())
        colour = lora_colour(lora[0]) if lora else None
        images = []
        for n in range(job.num_outputs):
            made = picture(job.prompt, job.negative_prompt, job.seed, job.width, job.height, n)
            if colour is not None:
                made = tinted(made, colour, 0.25 * job.lora_scale)
            images.append(png(made))
            pace.to(n + 1, job.num_outputs)
        pace.end()
        return images

    def edit(self, job: EditJob, ctx: Context) -> bytes:
        image, mask = ctx.fetch(job.urls("image")[:1] + job.urls("mask")[:1])
        pace = _Pace(ctx, self.controls())
        result = inpaint(image, mask, job.prompt, job.negative_prompt, job.seed)
        pace.to(1, 1)
        pace.end()
        return result

    def video(self, job: VideoJob, ctx: Context) -> Video:
        given = {
            name: ctx.fetch(job.urls(name)[:1])
            for name in ("image", "first_frame", "last_frame")
            if job.input_type != "text"
        }
        pace = _Pace(ctx, self.controls())
        frame = frames_of(
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            seed=job.seed,
            width=job.width,
            height=job.height,
            frames=job.frames,
            image=_one(given.get("image")) if job.input_type == "image" else None,
            first=_one(given.get("first_frame")) if job.input_type == "keyframes" else None,
            last=_one(given.get("last_frame")) if job.input_type == "keyframes" else None,
        )

        def pictures() -> Iterator[Image.Image]:
            for index in range(job.frames):
                yield frame(index)
                pace.to(index + 1, job.frames)

        mp4, poster = encode_mp4(pictures(), width=job.width, height=job.height, fps=job.fps)
        pace.end()
        return Video(mp4=mp4, poster=poster)

    def train(self, job: TrainingJob, ctx: Context) -> Lora:
        photos = ctx.fetch(job.urls("photo"))
        pace = _Pace(ctx, self.controls(), percent=False)
        weights = train(
            photos,
            steps=job.steps,
            trigger_word=job.trigger_word,
            seed=job.seed,
            on_step=lambda step: pace.to(step, job.steps),
        )
        sample = picture(job.sample, "", job.seed, 256, 256)
        sample = tinted(sample, lora_colour(weights), 0.25)
        pace.end()
        return Lora(weights=weights, samples=[png(sample)])


def _one(files: list[bytes] | None) -> bytes | None:
    return files[0] if files else None
