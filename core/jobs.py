"""Generation jobs and their state machine.

    queued -> dispatched -> running -> succeeded
       |          |            |  \\-> failed | cancelled
       |          |            \\---> queued   (requeued for a retry or a failover)
       |          \\-> running | succeeded | failed | cancelled | queued
       \\-> dispatched | failed | cancelled

Terminal states never change again.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from core.errors import IllegalTransition, InvalidInput, JobFinished
from core.pricing import ModelKind


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

_ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.DISPATCHED, JobStatus.FAILED, JobStatus.CANCELLED}),
    JobStatus.DISPATCHED: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
            JobStatus.QUEUED,
        }
    ),
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
}


class FailureReason(enum.StrEnum):
    INFRASTRUCTURE = "infrastructure"  # the provider broke: retry or fail over
    CONTENT = "content"  # the request itself was refused: never retried
    TIMEOUT = "timeout"
    INTERNAL = "internal"


class JobError(msgspec.Struct, frozen=True):
    reason: FailureReason
    message: str


MAX_PROMPT = 2000
MIN_SIDE, MAX_SIDE = 64, 2048


class ImageParams(msgspec.Struct, frozen=True, kw_only=True, tag="image"):
    prompt: str
    width: int = 1024
    height: int = 1024
    count: int = 1
    seed: int | None = None
    negative_prompt: str = ""

    def validate(self, *, max_count: int, max_width: int, max_height: int) -> None:
        if not self.prompt.strip():
            raise InvalidInput("the prompt is empty", field="prompt")
        if len(self.prompt) > MAX_PROMPT:
            raise InvalidInput(f"the prompt is longer than {MAX_PROMPT} characters", field="prompt")
        if len(self.negative_prompt) > MAX_PROMPT:
            raise InvalidInput(
                f"the negative prompt is longer than {MAX_PROMPT} characters",
                field="negative_prompt",
            )
        for name, value, limit in (
            ("width", self.width, max_width),
            ("height", self.height, max_height),
        ):
            if not MIN_SIDE <= value <= min(limit, MAX_SIDE):
                raise InvalidInput(
                    f"{name} must be between {MIN_SIDE} and {min(limit, MAX_SIDE)}", field=name
                )
            if value % 8:
                raise InvalidInput(f"{name} must be a multiple of 8", field=name)
        if not 1 <= self.count <= max_count:
            raise InvalidInput(f"count must be between 1 and {max_count}", field="count")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidInput("seed must be between 0 and 2^63-1", field="seed")


JobParams = ImageParams


class Job(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: ModelKind
    model_id: str
    params: JobParams
    cost: int
    hold_id: uuid.UUID | None
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    attempts: int = 0
    provider: str | None = None
    provider_job_id: str | None = None
    progress: int = 0
    error: JobError | None = None
    asset_ids: tuple[uuid.UUID, ...] = ()
    priority: int = 0
    version: int = 0  # bumped by the repository on every update: optimistic concurrency

    def _to(self, status: JobStatus, now: datetime, **changes: object) -> Job:
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        if status not in _ALLOWED[self.status]:
            raise IllegalTransition(f"job {self.id} cannot go from {self.status} to {status}")
        return msgspec.structs.replace(self, status=status, updated_at=now, **changes)

    def dispatch(self, provider: str, now: datetime) -> Job:
        return self._to(
            JobStatus.DISPATCHED,
            now,
            provider=provider,
            provider_job_id=None,
            attempts=self.attempts + 1,
        )

    def accepted_by_provider(self, provider_job_id: str, now: datetime) -> Job:
        if self.status is not JobStatus.DISPATCHED:
            raise IllegalTransition(f"job {self.id} is {self.status}, not dispatched")
        return msgspec.structs.replace(self, provider_job_id=provider_job_id, updated_at=now)

    def report_progress(self, progress: int, now: datetime) -> Job:
        progress = max(self.progress, min(99, max(0, progress)))
        if self.status is JobStatus.RUNNING:
            return msgspec.structs.replace(self, progress=progress, updated_at=now)
        return self._to(JobStatus.RUNNING, now, progress=progress)

    def succeed(self, asset_ids: tuple[uuid.UUID, ...], now: datetime) -> Job:
        if not asset_ids:
            raise InvalidInput("a succeeded job has at least one asset", field="assets")
        return self._to(JobStatus.SUCCEEDED, now, progress=100, asset_ids=asset_ids, error=None)

    def fail(self, error: JobError, now: datetime) -> Job:
        return self._to(JobStatus.FAILED, now, error=error)

    def cancel(self, now: datetime) -> Job:
        return self._to(JobStatus.CANCELLED, now)

    def requeue(self, error: JobError, now: datetime) -> Job:
        return self._to(JobStatus.QUEUED, now, error=error, provider_job_id=None, progress=0)
