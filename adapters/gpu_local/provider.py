"""The embedded default's GPU provider: renders previews on this process's CPU.

State lives in this process's memory: a poll from another process, or after this
one restarted, finds no such job and answers Failed(infrastructure), which the job
processor retries like any lost provider job. Use it in-process only, from one event
loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from genstudio.adapters.gpu_local.renderer import render_edit, render_png
from genstudio.adapters.gpu_local.trainer import train_lora
from genstudio.adapters.gpu_local.video import render_video
from genstudio.core.model.job_params import (
    EditParams,
    ImageParams,
    JobParams,
    TrainingParams,
    VideoParams,
)
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.core.model.routing import ProviderHealth
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuRequest,
    OutputRole,
    Pending,
    ProviderOutput,
    ProviderStatus,
    ProviderUnavailable,
)

UNKNOWN_JOB = JobError(FailureReason.INFRASTRUCTURE, "unknown job")


class _Stop(Exception):
    """Raised from a render thread's progress callback: the job was cancelled."""


def _units(params: JobParams) -> int:
    """What progress counts: images, or a video's frames."""
    if isinstance(params, ImageParams):
        return max(params.count, 1)
    if isinstance(params, VideoParams):
        return max(params.frames, 1)
    if isinstance(params, TrainingParams):
        return max(params.steps, 1)
    return 1


@dataclass(eq=False)
class _Job:
    params: JobParams
    inputs: dict[str, bytes] = field(default_factory=dict)
    photos: list[bytes] = field(default_factory=list)  # a training's, in order
    task: asyncio.Task[None] | None = None
    started: bool = False
    started_at: float | None = None
    done: int = 0  # images (or video frames) rendered so far
    stop: bool = False  # set on cancel: a render thread stops at its next frame
    result: ProviderStatus | None = None  # set once: Completed, Failed or Cancelled
    finished_at: float | None = None
    delivered: bool = False  # polled as Completed at least once
    size: int = 0  # bytes held in the result
    outputs: list[bytes] = field(default_factory=list)


class LocalGpuProvider:
    """Renders each request's images in worker threads, ``max_concurrent`` jobs at once.

    ``min_seconds`` makes every job take at least that long (images are paced evenly),
    so progress and cancellation can be seen. Finished jobs are kept so a poll can be
    repeated (a worker may crash between polling and storing): ``retain_seconds`` after
    they finish, ``delivered_seconds`` once a poll has returned their images, and never
    more than ``max_retained`` jobs or ``max_retained_bytes`` of images, oldest first.
    """

    #: renders in this process's threads: they end with it
    durable = False
    #: it renders here, from the inputs' bytes: the worker reads them from storage
    inline_inputs = True

    def __init__(
        self,
        name: str = "local",
        *,
        min_seconds: float = 0.0,
        max_concurrent: int = 2,
        retain_seconds: float = 600.0,
        delivered_seconds: float = 60.0,
        max_retained: int = 1000,
        max_retained_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.name = name
        self.min_seconds = min_seconds
        self.retain_seconds = retain_seconds
        self.delivered_seconds = delivered_seconds
        self.max_retained = max_retained
        self.max_retained_bytes = max_retained_bytes
        self._slots = asyncio.Semaphore(max_concurrent)
        # Insertion-ordered; finished jobs move to the end when they finish, so the
        # first finished job met while iterating is the oldest.
        self._jobs: OrderedDict[str, _Job] = OrderedDict()
        self._retained_bytes = 0

    async def submit(self, request: GpuRequest) -> str:
        params = request.params
        provider_job_id = f"{self.name}-{uuid.uuid4()}"
        # the renderer reads one file of each name (an edit's image and mask, a
        # video's frames): the first one given
        inline: dict[str, bytes] = {}
        for given in request.inputs:
            if given.data is not None:
                inline.setdefault(given.name, given.data)
        job = _Job(params=params, inputs=inline)
        job.photos = [i.data for i in request.inputs if i.name == "photo" and i.data is not None]
        self._jobs[provider_job_id] = job
        missing = sorted({i.name for i in params.inputs()} - set(inline))
        if missing:  # this provider reads inputs inline only (it sets inline_inputs)
            self._finish(
                provider_job_id,
                job,
                Failed(
                    JobError(
                        FailureReason.INFRASTRUCTURE,
                        f"the request has no inline data for {', '.join(missing)}",
                    )
                ),
            )
        else:
            job.task = asyncio.create_task(
                self._run(provider_job_id, job), name=f"gpu_local {provider_job_id}"
            )
        self._prune()
        return provider_job_id

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        self._prune()
        job = self._jobs.get(provider_job_id)
        if job is None:
            return Failed(UNKNOWN_JOB)
        if job.result is None:
            return Pending(progress=self._progress(job), started=job.started)
        if isinstance(job.result, Completed) and not job.delivered:
            job.delivered = True
        return job.result

    async def cancel(self, provider_job_id: str) -> None:
        job = self._jobs.get(provider_job_id)
        if job is None:
            return
        job.stop = True
        if job.task is not None and not job.task.done():
            # The image being drawn finishes in its thread; no further one starts
            # (a video stops at its next frame).
            job.task.cancel()
        self._finish(provider_job_id, job, Cancelled())

    async def fetch(self, output: ProviderOutput) -> bytes:
        if output.data is None:
            raise ProviderUnavailable(f"{self.name}: the output has no inline data")
        return output.data

    async def health(self) -> ProviderHealth:
        self._prune()
        queued = running = 0
        for job in self._jobs.values():
            if job.result is None:
                if job.started:
                    running += 1
                else:
                    queued += 1
        return ProviderHealth(
            healthy=True,
            queued=queued,
            running=running,
            detail="CPU preview renderer, not a diffusion model",
        )

    async def aclose(self) -> None:
        """Cancel every unfinished job and wait for their tasks (for a clean shutdown)."""
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._jobs.clear()
        self._retained_bytes = 0

    async def _run(self, provider_job_id: str, job: _Job) -> None:
        try:
            async with self._slots:
                job.started, job.started_at = True, time.monotonic()
                if isinstance(job.params, ImageParams):
                    outputs = await self._images(job, job.params)
                elif isinstance(job.params, TrainingParams):
                    outputs = await self._train(job, job.params)
                else:
                    began = time.monotonic()
                    if isinstance(job.params, EditParams):
                        outputs = await self._edit(job, job.params)
                    else:
                        outputs = await self._video(job, job.params)
                    rest = self.min_seconds - (time.monotonic() - began)
                    if rest > 0:
                        await asyncio.sleep(rest)
        except asyncio.CancelledError:
            self._finish(provider_job_id, job, Cancelled())
            raise
        except _Stop:
            self._finish(provider_job_id, job, Cancelled())
        except Exception as exc:  # a renderer bug: report it, never leave the job pending
            message = f"the local renderer failed: {type(exc).__name__}: {exc}"
            self._finish(provider_job_id, job, Failed(JobError(FailureReason.INTERNAL, message)))
        else:
            self._finish(provider_job_id, job, Completed(outputs))

    async def _images(self, job: _Job, p: ImageParams) -> tuple[ProviderOutput, ...]:
        per_image = self.min_seconds / max(p.count, 1)
        for index in range(p.count):
            began = time.monotonic()
            png = await asyncio.to_thread(
                render_png,
                prompt=p.prompt,
                negative_prompt=p.negative_prompt,
                seed=p.seed,
                width=p.width,
                height=p.height,
                index=index,
            )
            job.outputs.append(png)
            job.done = index + 1
            rest = per_image - (time.monotonic() - began)
            if rest > 0:
                await asyncio.sleep(rest)
        return tuple(ProviderOutput(content_type="image/png", data=d) for d in job.outputs)

    async def _edit(self, job: _Job, p: EditParams) -> tuple[ProviderOutput, ...]:
        png = await asyncio.to_thread(
            render_edit,
            image_png=job.inputs["image"],
            mask_png=job.inputs["mask"],
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            seed=p.seed,
        )
        job.done = 1
        return (ProviderOutput(content_type="image/png", data=png),)

    async def _video(self, job: _Job, p: VideoParams) -> tuple[ProviderOutput, ...]:
        def on_frame(done: int) -> None:
            job.done = done
            if job.stop:
                raise _Stop

        width, height = p.size
        mp4, poster = await asyncio.to_thread(
            render_video,
            prompt=p.prompt,
            negative_prompt=p.negative_prompt,
            seed=p.seed,
            width=width,
            height=height,
            fps=p.fps,
            duration_seconds=p.duration_seconds,
            image_png=job.inputs.get("image"),
            first_png=job.inputs.get("first_frame"),
            last_png=job.inputs.get("last_frame"),
            on_frame=on_frame,
        )
        return (
            ProviderOutput(content_type="video/mp4", data=mp4),
            ProviderOutput(content_type="image/png", data=poster, role=OutputRole.POSTER),
        )

    async def _train(self, job: _Job, p: TrainingParams) -> tuple[ProviderOutput, ...]:
        """Train for real, in miniature (``trainer.train_lora``), in a thread; the steps
        are paced over ``min_seconds`` so that progress can be watched rising."""
        per_step = self.min_seconds / max(p.steps, 1)
        began = time.monotonic()

        def on_step(done: int) -> None:
            job.done = done
            if job.stop:
                raise _Stop
            ahead = began + done * per_step - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)  # in the training thread, never on the event loop

        weights, sample, _ = await asyncio.to_thread(
            train_lora,
            job.photos,
            steps=p.steps,
            trigger_word=p.trigger_word,
            seed=p.seed,
            on_step=on_step,
        )
        return (
            ProviderOutput(
                content_type="application/octet-stream", data=weights, role=OutputRole.WEIGHTS
            ),
            ProviderOutput(content_type="image/png", data=sample),
        )

    def _progress(self, job: _Job) -> int:
        count = _units(job.params)
        progress = 100 * job.done / count
        if self.min_seconds > 0 and job.started_at is not None:
            progress = max(progress, 100 * (time.monotonic() - job.started_at) / self.min_seconds)
        return min(99, int(progress))

    def _finish(self, provider_job_id: str, job: _Job, result: ProviderStatus) -> None:
        if job.result is not None:
            return  # the first outcome stands (a cancel racing the last image, say)
        job.result = result
        job.finished_at = time.monotonic()
        job.outputs = []  # a Completed result holds the bytes now
        if isinstance(result, Completed):
            job.size = sum(len(o.data or b"") for o in result.outputs)
        self._retained_bytes += job.size
        if provider_job_id in self._jobs:
            self._jobs.move_to_end(provider_job_id)
        self._prune()

    def _prune(self) -> None:
        now = time.monotonic()
        finished = [(k, j) for k, j in self._jobs.items() if j.finished_at is not None]
        excess = len(finished) - self.max_retained
        for key, job in finished:
            assert job.finished_at is not None
            ttl = self.delivered_seconds if job.delivered else self.retain_seconds
            over = excess > 0 or self._retained_bytes > self.max_retained_bytes
            if not over and now - job.finished_at < ttl:
                continue
            del self._jobs[key]
            excess -= 1
            self._retained_bytes -= job.size
