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
import re
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
    prompt: str  # what the model renders (the enhanced prompt when enhancement was asked)
    width: int = 1024
    height: int = 1024
    count: int = 1
    seed: int | None = None
    negative_prompt: str = ""
    original_prompt: str | None = None  # the user's words, when ``prompt`` was enhanced

    def validate(self, *, max_count: int, max_width: int, max_height: int) -> None:
        check_text(self.prompt, self.negative_prompt)
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

    def input_keys(self) -> dict[str, str]:
        """Uploaded media the job reads, by input name: none for text-to-image."""
        return {}


#: C0 control characters but tab, newline and carriage return, and DEL: nothing a person
#: types into a prompt, and NUL cannot be stored (PostgreSQL refuses it in text)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(prompt: str, negative_prompt: str) -> None:
    """The checks every prompt and negative prompt pass, whatever the model."""
    if not prompt.strip():
        raise InvalidInput("the prompt is empty", field="prompt")
    for field, label, value in (
        ("prompt", "the prompt", prompt),
        ("negative_prompt", "the negative prompt", negative_prompt),
    ):
        if len(value) > MAX_PROMPT:
            raise InvalidInput(f"{label} is longer than {MAX_PROMPT} characters", field=field)
        if _CONTROL.search(value):
            raise InvalidInput(f"{label} contains a control character (such as NUL)", field=field)


def _check_seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed < 2**63:
        raise InvalidInput("seed must be between 0 and 2^63-1", field="seed")


def _check_key(key: str | None, field: str) -> None:
    if not key:
        raise InvalidInput(f"{field} is required", field=field)


class EditParams(msgspec.Struct, frozen=True, kw_only=True, tag="edit"):
    """Inpainting: repaint the masked area of an uploaded image.

    ``image_key`` and ``mask_key`` are storage keys of the user's uploads (the mask
    normalised to a greyscale PNG of the image's size, 255 where to repaint);
    ``width`` and ``height`` are the image's, and price the job.
    """

    prompt: str
    image_key: str
    mask_key: str
    width: int
    height: int
    negative_prompt: str = ""
    seed: int | None = None
    strength: float = 0.85

    def validate(self, *, max_width: int, max_height: int) -> None:
        check_text(self.prompt, self.negative_prompt)
        _check_key(self.image_key, "image")
        _check_key(self.mask_key, "mask")
        if not (MIN_SIDE <= self.width <= max_width and MIN_SIDE <= self.height <= max_height):
            raise InvalidInput(
                f"the image is {self.width}x{self.height}; this model edits images from "
                f"{MIN_SIDE}x{MIN_SIDE} to {max_width}x{max_height}",
                field="image",
            )
        if not 0.0 < self.strength <= 1.0:
            raise InvalidInput("strength must be greater than 0 and at most 1", field="strength")
        _check_seed(self.seed)

    def input_keys(self) -> dict[str, str]:
        return {"image": self.image_key, "mask": self.mask_key}


class VideoInput(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"  # animate one uploaded image
    KEYFRAMES = "keyframes"  # go from an uploaded first frame to an uploaded last frame


#: the frame size of each offered resolution (16:9, even sides for H.264's 4:2:0)
RESOLUTIONS: dict[str, tuple[int, int]] = {"480p": (854, 480), "720p": (1280, 720)}
MIN_SECONDS, MAX_SECONDS = 1, 10
MIN_FPS, MAX_FPS = 8, 30


class VideoParams(msgspec.Struct, frozen=True, kw_only=True, tag="video"):
    """A video of exactly ``duration_seconds * fps`` frames at ``RESOLUTIONS[resolution]``.

    Text-to-video uses no upload; image-to-video starts from ``image_key``; keyframes
    go from ``first_frame_key`` to ``last_frame_key`` (storage keys of the user's uploads).
    """

    prompt: str
    input_type: VideoInput = VideoInput.TEXT
    negative_prompt: str = ""
    duration_seconds: int = 5
    resolution: str = "480p"
    fps: int = 16
    seed: int | None = None
    image_key: str | None = None
    first_frame_key: str | None = None
    last_frame_key: str | None = None

    @property
    def frames(self) -> int:
        return self.duration_seconds * self.fps

    @property
    def size(self) -> tuple[int, int]:
        return RESOLUTIONS[self.resolution]

    def validate(self, *, resolutions: frozenset[str] | None = None) -> None:
        check_text(self.prompt, self.negative_prompt)
        offered = RESOLUTIONS.keys() if resolutions is None else resolutions & RESOLUTIONS.keys()
        if self.resolution not in offered:
            raise InvalidInput(
                f"resolution must be one of {', '.join(sorted(offered))}", field="resolution"
            )
        if not MIN_SECONDS <= self.duration_seconds <= MAX_SECONDS:
            raise InvalidInput(
                f"duration_seconds must be between {MIN_SECONDS} and {MAX_SECONDS}",
                field="duration_seconds",
            )
        if not MIN_FPS <= self.fps <= MAX_FPS:
            raise InvalidInput(f"fps must be between {MIN_FPS} and {MAX_FPS}", field="fps")
        _check_seed(self.seed)
        wanted = {
            VideoInput.TEXT: (),
            VideoInput.IMAGE: ("image",),
            VideoInput.KEYFRAMES: ("first_frame", "last_frame"),
        }[self.input_type]
        given = {
            "image": self.image_key,
            "first_frame": self.first_frame_key,
            "last_frame": self.last_frame_key,
        }
        for name, key in given.items():
            if name in wanted:
                _check_key(key, name)
            elif key is not None:
                raise InvalidInput(f"a {self.input_type.value} video takes no {name}", field=name)

    def input_keys(self) -> dict[str, str]:
        keys = {
            "image": self.image_key,
            "first_frame": self.first_frame_key,
            "last_frame": self.last_frame_key,
        }
        return {name: key for name, key in keys.items() if key is not None}


JobParams = ImageParams | EditParams | VideoParams


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
    # a retry waits in the database until then (exponential backoff with jitter)
    next_attempt_at: datetime | None = None
    # the worker that owns the job while it is at a provider, and until when; a
    # worker whose lease ran out (it died) is replaced by the next one to claim it
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # set when a failure exhausted the job's attempts: operators see and re-run it
    dead_lettered_at: datetime | None = None
    rerun_of: uuid.UUID | None = None
    # when a provider accepted this attempt's work (with ``provider_job_id``): the job
    # timeout runs from here. A takeover (another worker follows the same work at the
    # provider after a crash, an expired lease or a graceful hand-back) keeps it; a new
    # attempt (a retry, a failover, a hand-back that requeues) clears it, and the
    # provider's next acceptance sets it again. A worker that died before the
    # acceptance was recorded leaves none: its successor submits again, and times
    # the attempt from that acceptance.
    submitted_at: datetime | None = None

    def is_due(self, now: datetime) -> bool:
        """Queued and past any retry delay: a worker may claim it."""
        return self.status is JobStatus.QUEUED and (
            self.next_attempt_at is None or self.next_attempt_at <= now
        )

    def postpone(self, until: datetime, now: datetime) -> Job:
        """A queued job waits until ``until`` (no provider can take it now)."""
        if self.status is not JobStatus.QUEUED:
            raise IllegalTransition(f"job {self.id} is {self.status}, not queued")
        return msgspec.structs.replace(self, next_attempt_at=until, updated_at=now)

    def lease_expired(self, now: datetime) -> bool:
        return self.lease_expires_at is None or self.lease_expires_at <= now

    def is_abandoned(self, now: datetime) -> bool:
        """At a provider (or on its way) with nobody holding the lease: a worker died."""
        return self.status in (JobStatus.DISPATCHED, JobStatus.RUNNING) and self.lease_expired(now)

    def leased(self, owner: str, until: datetime, now: datetime) -> Job:
        """Take or renew the job's lease (no state change)."""
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        return msgspec.structs.replace(
            self, lease_owner=owner, lease_expires_at=until, updated_at=now
        )

    def _to(self, status: JobStatus, now: datetime, **changes: object) -> Job:
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        if status not in _ALLOWED[self.status]:
            raise IllegalTransition(f"job {self.id} cannot go from {self.status} to {status}")
        return msgspec.structs.replace(self, status=status, updated_at=now, **changes)

    def dispatch(
        self,
        provider: str,
        now: datetime,
        *,
        lease_owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> Job:
        return self._to(
            JobStatus.DISPATCHED,
            now,
            provider=provider,
            provider_job_id=None,
            submitted_at=None,
            attempts=self.attempts + 1,
            next_attempt_at=None,
            lease_owner=lease_owner,
            lease_expires_at=lease_until,
        )

    def accepted_by_provider(self, provider_job_id: str, now: datetime) -> Job:
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        if self.status is not JobStatus.DISPATCHED:
            raise IllegalTransition(f"job {self.id} is {self.status}, not dispatched")
        return msgspec.structs.replace(
            self, provider_job_id=provider_job_id, submitted_at=now, updated_at=now
        )

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
        return self._to(JobStatus.FAILED, now, error=error, lease_owner=None, lease_expires_at=None)

    def dead_letter(self, error: JobError, now: datetime) -> Job:
        """Fail for good after the last attempt: kept for operators to inspect and re-run."""
        return msgspec.structs.replace(self.fail(error, now), dead_lettered_at=now)

    def cancel(self, now: datetime) -> Job:
        return self._to(JobStatus.CANCELLED, now, lease_owner=None, lease_expires_at=None)

    def handed_back(self, now: datetime) -> Job:
        """Back to the queue, due now, because the worker running it stopped (a deploy,
        a restart): not a failure, so its attempt is given back and its last error, if
        any, kept. Only for a job no provider is running (never submitted, or its
        provider's work ended with the worker's process)."""
        return self._to(
            JobStatus.QUEUED,
            now,
            attempts=max(0, self.attempts - 1),
            provider_job_id=None,
            submitted_at=None,
            progress=0,
            next_attempt_at=None,
            lease_owner=None,
            lease_expires_at=None,
        )

    def lease_given_up(self, now: datetime) -> Job:
        """The worker stops following the job, which goes on at its provider: its lease
        ends now, so that another worker takes it over at once (and polls it on)."""
        if self.status.terminal:
            raise JobFinished(f"job {self.id} is already {self.status}")
        return msgspec.structs.replace(self, lease_expires_at=now, updated_at=now)

    def requeue(
        self,
        error: JobError,
        now: datetime,
        *,
        retry_at: datetime | None = None,
        count_attempt: bool = True,
    ) -> Job:
        """Back to the queue for another attempt, not before ``retry_at``.

        ``count_attempt=False``: the provider never took the job (it was unreachable),
        so the attempt is given back: jobs wait out an outage instead of dying of it.
        """
        return self._to(
            JobStatus.QUEUED,
            now,
            attempts=self.attempts if count_attempt else max(0, self.attempts - 1),
            error=error,
            provider_job_id=None,
            submitted_at=None,
            progress=0,
            next_attempt_at=retry_at,
            lease_owner=None,
            lease_expires_at=None,
        )
