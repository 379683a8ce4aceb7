"""The one engine interface both the Modal app and the Runpod handler call.

An engine turns a checked job (``gpu_worker.contract``) into files: PNG images, an
MP4 and its poster, or LoRA weights and sample images. It reads its inputs through
the ``Context`` (downloaded on demand), reports progress through it, and stops when
it says the job was cancelled. It raises ``ContentPolicyError`` to refuse content;
any other exception is an infrastructure failure (retried by genstudio).

Two engines: ``gpu_worker.preview.PreviewEngine`` (CPU, for tests and trials: real
files, no model) and ``gpu_worker.diffusion.DiffusersEngine`` (GPU, loaded lazily).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gpu_worker.contract import EditJob, ImageJob, JobCancelled, TrainingJob, VideoJob


@dataclass(frozen=True)
class Video:
    mp4: bytes
    poster: bytes  # PNG, the first frame


@dataclass(frozen=True)
class Lora:
    weights: bytes  # a .safetensors file
    samples: list[bytes]  # PNGs rendered with it


@dataclass
class Context:
    """What an engine may do besides computing: read inputs, report, stop."""

    #: downloads one input URL (a signed URL, no credentials); raises on failure
    download: Callable[[str], bytes]
    #: called with (done, total): steps of a training, or any unit of work
    report: Callable[[int, int], None] = lambda done, total: None
    cancelled: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Raise JobCancelled once the job was cancelled (call between steps)."""
        if self.cancelled.is_set():
            raise JobCancelled("the job was cancelled")

    def progress(self, done: int, total: int) -> None:
        self.check()
        self.report(done, total)

    def fetch(self, urls: list[str]) -> list[bytes]:
        out = []
        for url in urls:
            self.check()
            out.append(self.download(url))
        return out


class Engine(Protocol):
    """Makes what a job asks for. Every method may be slow (seconds to an hour)."""

    name: str

    def image(self, job: ImageJob, ctx: Context) -> list[bytes]:
        """``job.num_outputs`` PNGs of exactly ``width`` x ``height`` (with the ``lora``
        input applied at ``lora_scale`` when the job has one)."""
        ...

    def edit(self, job: EditJob, ctx: Context) -> bytes:
        """One PNG: the image repainted where the mask is >= 128, every other pixel kept."""
        ...

    def video(self, job: VideoJob, ctx: Context) -> Video:
        """An H.264 MP4 of ``job.frames`` frames at ``job.fps`` and its poster."""
        ...

    def train(self, job: TrainingJob, ctx: Context) -> Lora:
        """LoRA weights trained on the ``photo`` inputs for ``job.steps`` steps,
        reporting (step, steps), and at least one sample rendered with them."""
        ...
