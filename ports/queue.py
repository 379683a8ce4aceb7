"""The job queue only wakes workers up; Postgres says what is due."""

from __future__ import annotations

import uuid
from typing import Protocol


class JobQueue(Protocol):
    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        """Ask a worker to process the job. Delivery is at least once."""
        ...
