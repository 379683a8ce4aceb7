"""A GPU provider that does what the test says: ``ScriptedGpu``.

Every job a worker submits takes the next script queued with ``succeeds``, ``fails``
or ``hangs`` (``times`` jobs each), or the standing one once the queue is empty
(``times=None`` replaces the standing script; at first: succeed at once). A script's
``progress`` values are what the job's polls report, one per poll, before its end::

    gpu.fails(progress=(40,))                   # the next job: 40 %, then fails
    gpu.succeeds(progress=(25, 50, 75))         # the one after: three polls, then done
    gpu.hangs(times=None)                       # every job after that: never ends
    gpu.down = True                             # every call: ProviderUnavailable

A successful image or edit job completes with one PNG of the requested size per image,
a video job with an MP4 and its poster frame (valid files: genstudio's output checks
read their sizes); ``succeeds(outputs=...)`` gives outputs of your own (a training job
needs them: its LoRA weights are yours to choose). Everything submitted, polled and
cancelled is recorded (``submitted``, ``cancelled``).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from genstudio.adapters.memory.gpu import tiny_mp4, tiny_png
from genstudio.core.model.job_params import EditParams, ImageParams, VideoParams
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


@dataclass(frozen=True)
class Script:
    """What one job does: report ``progress`` (one value a poll), then end as
    ``outcome`` says: ``"succeed"`` (with ``outputs``, or made from the request),
    ``"fail"`` (with ``error``) or ``"hang"`` (pending until cancelled)."""

    outcome: str
    progress: tuple[int, ...] = ()
    error: JobError | None = None
    outputs: tuple[ProviderOutput, ...] | None = None


@dataclass
class _Job:
    request: GpuRequest
    script: Script
    polls: int = 0


class ScriptedGpu:
    """A ``GpuProvider`` (``genstudio.ports.gpu``) scripted job by job."""

    #: its jobs outlive a worker (as a cloud provider's do)
    durable = True
    #: it gets signed URLs, as a cloud provider does
    inline_inputs = False

    def __init__(self, name: str = "scripted") -> None:
        self.name = name
        #: every call raises ProviderUnavailable while True (and health says unhealthy)
        self.down = False
        self.submitted: list[GpuRequest] = []
        self.cancelled: list[str] = []
        self._standing = Script("succeed")
        self._queued: deque[Script] = deque()
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)

    # -- the script ---------------------------------------------------------------------

    def script(self, script: Script, times: int | None = 1) -> ScriptedGpu:
        """The next ``times`` jobs follow ``script``; ``None``: every job from the
        queued ones on."""
        if times is None:
            self._standing = script
        else:
            if times < 1:
                raise ValueError("times is at least 1 (or None: every job)")
            self._queued.extend([script] * times)
        return self

    def succeeds(
        self,
        *,
        progress: Sequence[int] = (),
        outputs: Sequence[ProviderOutput] | None = None,
        times: int | None = 1,
    ) -> ScriptedGpu:
        return self.script(
            Script(
                "succeed",
                _progress(progress),
                outputs=None if outputs is None else tuple(outputs),
            ),
            times,
        )

    def fails(
        self,
        reason: FailureReason = FailureReason.INFRASTRUCTURE,
        message: str = "the GPU failed",
        *,
        progress: Sequence[int] = (),
        times: int | None = 1,
    ) -> ScriptedGpu:
        """``reason``: INFRASTRUCTURE (the default) is retried by genstudio, then
        dead-lettered; CONTENT fails the job at once."""
        return self.script(
            Script("fail", _progress(progress), error=JobError(reason, message)), times
        )

    def hangs(self, *, progress: Sequence[int] = (), times: int | None = 1) -> ScriptedGpu:
        """Pending for ever (started), until cancelled: genstudio's timeout for the
        job's kind ends the attempt."""
        return self.script(Script("hang", _progress(progress)), times)

    # -- what happened ------------------------------------------------------------------

    def polls_of(self, provider_job_id: str) -> int:
        """How many times the job was polled."""
        return self._jobs[provider_job_id].polls

    @property
    def running(self) -> list[str]:
        """Provider ids of the jobs neither finished nor cancelled."""
        return [
            job_id
            for job_id, job in self._jobs.items()
            if job_id not in self.cancelled
            and (job.script.outcome == "hang" or job.polls <= len(job.script.progress))
        ]

    # -- the port -----------------------------------------------------------------------

    def _check(self) -> None:
        if self.down:
            raise ProviderUnavailable(f"{self.name} is down (ScriptedGpu.down)")

    async def submit(self, request: GpuRequest) -> str:
        self._check()
        script = self._queued.popleft() if self._queued else self._standing
        provider_job_id = f"{self.name}-{next(self._ids)}"
        self.submitted.append(request)
        self._jobs[provider_job_id] = _Job(request, script)
        return provider_job_id

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        self._check()
        if provider_job_id in self.cancelled:
            return Cancelled()
        job = self._jobs.get(provider_job_id)
        if job is None:
            return Failed(JobError(FailureReason.INFRASTRUCTURE, "unknown job"))
        job.polls += 1
        script = job.script
        if job.polls <= len(script.progress):
            return Pending(progress=script.progress[job.polls - 1], started=True)
        if script.outcome == "hang":
            return Pending(progress=script.progress[-1] if script.progress else 0, started=True)
        if script.outcome == "fail":
            assert script.error is not None
            return Failed(script.error)
        if script.outputs is not None:
            return Completed(script.outputs)
        return _made_for(job.request)

    async def cancel(self, provider_job_id: str) -> None:
        self._check()
        if provider_job_id not in self.cancelled:
            self.cancelled.append(provider_job_id)

    async def fetch(self, output: ProviderOutput) -> bytes:
        self._check()
        if output.data is None:
            raise ProviderUnavailable("ScriptedGpu outputs are inline: this one has no data")
        return output.data

    async def health(self) -> ProviderHealth:
        return ProviderHealth(healthy=not self.down, queued=0, running=len(self.running))


def _progress(values: Sequence[int]) -> tuple[int, ...]:
    progress = tuple(values)
    if any(not 0 <= p <= 100 for p in progress):
        raise ValueError("progress values are percentages, 0 to 100")
    return progress


def _made_for(request: GpuRequest) -> ProviderStatus:
    """Outputs shaped as the request asks: what genstudio's output checks accept."""
    p = request.params
    if isinstance(p, ImageParams):
        png = tiny_png(p.width, p.height)
        return Completed(
            tuple(ProviderOutput(content_type="image/png", data=png) for _ in range(p.count))
        )
    if isinstance(p, EditParams):
        return Completed(
            (ProviderOutput(content_type="image/png", data=tiny_png(p.width, p.height)),)
        )
    if isinstance(p, VideoParams):
        width, height = p.size
        return Completed(
            (
                ProviderOutput(
                    content_type="video/mp4", data=tiny_mp4(width, height, p.frames, p.fps)
                ),
                ProviderOutput(
                    content_type="image/png", data=tiny_png(width, height), role=OutputRole.POSTER
                ),
            )
        )
    return Failed(
        JobError(
            FailureReason.INTERNAL,
            f"ScriptedGpu makes no {type(p).__name__} outputs by itself: "
            "script succeeds(outputs=...)",
        )
    )
