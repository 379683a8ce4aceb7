"""GPU providers: where a job's pixels are made."""

from __future__ import annotations

import enum
import uuid
from typing import Protocol

import msgspec

from genstudio.core.model.job_params import JobParams
from genstudio.core.model.jobs import JobError
from genstudio.core.model.routing import ProviderHealth


class ProviderInput(msgspec.Struct, frozen=True, kw_only=True):
    """One file a job reads, as its provider gets it.

    ``name`` is the job's name for it (``JobInput.name``: "image", "mask",
    "first_frame", "last_frame"; several inputs may share one, such as a training
    job's photos). ``url`` is a signed, expiring URL of the upload: what a remote
    provider downloads, always set. ``data`` is the same file inline, set only for a
    provider that declares ``inline_inputs``; a remote adapter never sends it on.
    """

    name: str
    url: str
    content_type: str = "image/png"
    data: bytes | None = None


class GpuRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One job for a provider.

    ``inputs`` are the job's uploads in the job's order (``params.inputs()``).
    ``time_limit`` is how long this attempt may run, in seconds (the job kind's
    timeout): a provider that stops runaway work itself may be told it.
    """

    job_id: uuid.UUID
    provider_model: str
    params: JobParams
    inputs: tuple[ProviderInput, ...] = ()
    time_limit: float | None = None

    def named(self, name: str) -> tuple[ProviderInput, ...]:
        """The inputs of that name, in order."""
        return tuple(i for i in self.inputs if i.name == name)

    def first(self, name: str) -> ProviderInput | None:
        """The first input of that name, or None."""
        return next((i for i in self.inputs if i.name == name), None)


class OutputRole(enum.StrEnum):
    RESULT = "result"  # an image, an edited image or a video: becomes a media row
    POSTER = "poster"  # a video's poster frame (PNG): becomes that video's thumbnail
    WEIGHTS = "weights"  # a training's LoRA (.safetensors): becomes a trained model


class ProviderOutput(msgspec.Struct, frozen=True, kw_only=True):
    """One output file: inline bytes, or a URL the adapter fetches.

    A video job completes with its MP4 (``video/mp4``, role result) and a poster
    frame (``image/png``, role poster): the n-th poster belongs to the n-th video. A
    training job completes with its LoRA weights (role weights) and sample images
    (``image/png``, role result).
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
    """Where jobs run. Every method but ``health`` may be called for a job that
    another worker (or process) submitted: the provider's id is all they share.
    """

    name: str
    #: whether the work it was given goes on when this process stops (a cloud provider:
    #: True; a renderer in this process: False). A worker that stops gracefully leaves a
    #: durable provider's job to be taken over, and requeues the others.
    durable: bool
    #: whether it reads a job's inputs inline: True, and every ``ProviderInput`` it is
    #: handed carries its bytes in ``data`` (read from storage by the worker); False,
    #: and it gets signed URLs only, which its own side downloads. Only a provider in
    #: this process (the preview renderer) should say True: the bytes of 30 photos
    #: would otherwise travel through the worker into a request body.
    inline_inputs: bool

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
