"""What happened to a job, told to its owner (the app's inbox, later push and realtime)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.ids import new_id


class JobEventKind(enum.StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD_LETTERED = "dead_lettered"
    CANCELLED = "cancelled"
    RERUN = "rerun"


class JobEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    job_id: uuid.UUID
    user_id: uuid.UUID
    kind: JobEventKind
    message: str
    created_at: datetime

    @classmethod
    def new(
        cls, job_id: uuid.UUID, user_id: uuid.UUID, kind: JobEventKind, message: str, now: datetime
    ) -> JobEvent:
        return cls(
            id=new_id(),
            job_id=job_id,
            user_id=user_id,
            kind=kind,
            message=message,
            created_at=now,
        )
