"""GPU providers: where a job's pixels are made."""

from __future__ import annotations

import enum
import uuid
from typing import Protocol

import msgspec

from core.model.job_params import JobParams
from core.model.jobs import JobError
from core.model.routing import ProviderHealth


class GpuRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One job for a provider.

    ``inputs`` are the job's uploads (``params.input_keys()``: "image", "mask",
    "first_frame", "last_frame") as signed, expiring URLs: what a remote provider
    downloads. ``input_data`` holds the same files inline, by the same names, and is
    filled only for a provider that sets ``inline_inputs = True`` (one in this process,
    such as gpu_local); a remote adapter never sends it on. Both are PNG.
    """

    job_id: uuid.UUID
    provider_model: str
    params: JobParams
    inputs: dict[str, str] = {}
    input_data: dict[str, bytes] = {}


class OutputRole(enum.StrEnum):
    RESULT = "result"  # an image, an edited image or a video: becomes a media row
    POSTER = "poster"  # a video's poster frame (PNG): becomes that video's thumbnail


class ProviderOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One output file: inline bytes, or a URL the adapter fetches.

    A video job completes with its MP4 (``video/mp4``, role result) and a poster
    frame (``image/png``, role poster): the n-th poster belongs to the n-th video.
    """

    content_type: str
    data: bytes | None = None
    url: str | None = None
    role: OutputRole = OutputRole.RESULT


class Pending(msgspec.Struct, frozen=True, tag="pending"):
    progress: int = 0
    started: bool = False


class Completed(msgspec.Struct, frozen=True, tag="completed"):
    outputs: tuple[ProviderOutput, ...]


class Failed(msgspec.Struct, frozen=True, tag="failed"):
    error: JobError


class Cancelled(msgspec.Struct, frozen=True, tag="cancelled"):
    pass


ProviderStatus = Pending | Completed | Failed | Cancelled


class ProviderUnavailable(Exception):
    """The provider could not be reached or answered with an infrastructure error."""


class GpuProvider(Protocol):
    name: str
    #: whether the work it was given goes on when this process stops (a cloud provider:
    #: True; a renderer in this process: False). A worker that stops gracefully leaves a
    #: durable provider's job to be taken over, and requeues the others.
    durable: bool

    async def submit(self, request: GpuRequest) -> str:
        """Start the work; return the provider's id for it. Raises ProviderUnavailable."""
        ...

    async def poll(self, provider_job_id: str) -> ProviderStatus:
        """Raises ProviderUnavailable; an unknown id is Failed(infrastructure)."""
        ...

    async def cancel(self, provider_job_id: str) -> None:
        """Best effort; cancelling a finished or unknown job is not an error."""
        ...

    async def fetch(self, output: ProviderOutput) -> bytes:
        """The output's bytes (inline data, or downloaded from its URL)."""
        ...

    async def health(self) -> ProviderHealth: ...
