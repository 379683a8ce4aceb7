from __future__ import annotations

import itertools
import struct
import zlib

from core.jobs import FailureReason, JobError
from ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuRequest,
    Pending,
    ProviderHealth,
    ProviderOutput,
    ProviderStatus,
    ProviderUnavailable,
)


def tiny_png(width: int, height: int, rgb: tuple[int, int, int] = (90, 60, 200)) -> bytes:
    """A valid, flat-colour PNG (no imaging library needed)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


class InMemoryGpuProvider:
    """A scripted provider: each job takes ``steps`` polls, then completes.

    Knobs: ``down`` (every call raises ProviderUnavailable), ``fail_with`` (jobs
    fail with that error), ``steps``.
    """

    def __init__(self, name: str = "memory", *, steps: int = 1) -> None:
        self.name = name
        self.steps = steps
        self.down = False
        self.fail_with: JobError | None = None
        self.submitted: list[GpuRequest] = []
        self.cancelled: list[str] = []
        self._jobs: dict[str, tuple[GpuRequest, int]] = {}
        self._ids = itertools.count(1)

    def _check(self) -> None:
        if self.down:
            raise ProviderUnavailable(f"{self.name} is down")

    async def submit(self, request: GpuRequest) -> str:
        self._check()
        provider_job_id = f"{self.name}-{next(self._ids)}"
        self.submitted.append(request)
        self._jobs[provider_job_id] = (request, 0)
        return provider_job_id

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        self._check()
        if provider_job_id in self.cancelled:
            return Cancelled()
        if provider_job_id not in self._jobs:
            return Failed(JobError(FailureReason.INFRASTRUCTURE, "unknown job"))
        request, polls = self._jobs[provider_job_id]
        if polls < self.steps:
            self._jobs[provider_job_id] = (request, polls + 1)
            return Pending(progress=int(100 * polls / max(self.steps, 1)), started=True)
        if self.fail_with is not None:
            return Failed(self.fail_with)
        p = request.params
        png = tiny_png(p.width, p.height)
        return Completed(
            tuple(ProviderOutput(content_type="image/png", data=png) for _ in range(p.count))
        )

    async def cancel(self, provider_job_id: str) -> None:
        self.cancelled.append(provider_job_id)

    async def fetch(self, output: ProviderOutput) -> bytes:
        if output.data is None:
            raise ProviderUnavailable("no inline data")
        return output.data

    async def health(self) -> ProviderHealth:
        return ProviderHealth(healthy=not self.down, queued=0, running=len(self._jobs))
