from __future__ import annotations

import itertools
import struct
import zlib

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


def tiny_png(width: int, height: int, rgb: tuple[int, int, int] = (90, 60, 200)) -> bytes:
    """A valid, flat-colour PNG (no imaging library needed)."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def _full_box(kind: bytes, body: bytes) -> bytes:
    return _box(kind, b"\x00\x00\x00\x00" + body)  # version 0, no flags


def tiny_mp4(width: int, height: int, frames: int, fps: int) -> bytes:
    """The boxes of an MP4 with one video track of ``frames`` samples at ``fps``: enough
    for ``core.media.mp4_info`` (no decoder needed, and none could play it)."""
    duration = frames  # in units of the timescale, which is fps
    unity = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _full_box(
        b"mvhd",
        struct.pack(">IIII", 0, 0, fps, duration)
        + struct.pack(">IH", 0x10000, 0x100)
        + bytes(10)
        + unity
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + unity
        + struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", struct.pack(">IIIIHH", 0, 0, fps, duration, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", struct.pack(">I", 0) + b"vide" + bytes(12) + b"video\x00")
    stts = _full_box(b"stts", struct.pack(">III", 1, frames, 1))
    stbl = _box(b"stbl", stts)
    minf = _box(b"minf", stbl)
    mdia = _box(b"mdia", mdhd + hdlr + minf)
    trak = _box(b"trak", tkhd + mdia)
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 0x200) + b"isomiso2mp41")
    return ftyp + _box(b"moov", mvhd + trak) + _box(b"mdat", b"")


class InMemoryGpuProvider:
    """A scripted provider: each job takes ``steps`` polls, then completes.

    Knobs: ``down`` (every call raises ProviderUnavailable), ``fail_with`` (jobs
    fail with that error), ``steps``.
    """

    #: its jobs live as long as the object (a stand-in for a cloud provider)
    durable = True
    #: it gets URLs, as a cloud provider does (it reads no input anyway)
    inline_inputs = False

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
        if isinstance(p, ImageParams):
            png = tiny_png(p.width, p.height)
            return Completed(
                tuple(ProviderOutput(content_type="image/png", data=png) for _ in range(p.count))
            )
        if isinstance(p, EditParams):
            return Completed(
                (ProviderOutput(content_type="image/png", data=tiny_png(p.width, p.height)),)
            )
        assert isinstance(p, VideoParams)
        width, height = p.size
        return Completed(
            (
                ProviderOutput(
                    content_type="video/mp4", data=tiny_mp4(width, height, p.frames, p.fps)
                ),
                ProviderOutput(
                    content_type="image/png",
                    data=tiny_png(width, height),
                    role=OutputRole.POSTER,
                ),
            )
        )

    async def cancel(self, provider_job_id: str) -> None:
        self.cancelled.append(provider_job_id)

    async def fetch(self, output: ProviderOutput) -> bytes:
        if output.data is None:
            raise ProviderUnavailable("no inline data")
        return output.data

    async def health(self) -> ProviderHealth:
        return ProviderHealth(healthy=not self.down, queued=0, running=len(self._jobs))
