"""The job queue only wakes workers up; Postgres says what is due."""

from __future__ import annotations

import uuid
from typing import Protocol

import msgspec


class JobQueue(Protocol):
    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        """Ask a worker to process the job. Delivery is at least once."""
        ...


class StreamDepth(msgspec.Struct, frozen=True, kw_only=True):
    """One queue stream: messages in it, and delivered but not yet acknowledged."""

    name: str
    length: int
    pending: int


class QueueInspector(Protocol):
    async def streams(self) -> list[StreamDepth]:
        """Every stream the workers read, for the operations dashboard. Raises
        whatever the queue's client raises when it does not answer (bounded by the
        client's timeouts)."""
        ...
