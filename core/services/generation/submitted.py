"""What a submission answers: the job, and whether it was a replay."""

from __future__ import annotations

import uuid

import msgspec

from genstudio.core.model.idempotency import IdempotencyRecord, StoredResponse
from genstudio.core.model.jobs import Job


class Submitted(msgspec.Struct, frozen=True, kw_only=True):
    """What a submission answered: the job as it was submitted (its first answer and
    every replay show the same snapshot), or, replaying a record from before
    migration 0012, the response stored then."""

    job: Job | None
    replayed: bool = False
    response: StoredResponse | None = None

    @property
    def job_id(self) -> uuid.UUID | None:
        return None if self.job is None else self.job.id

    @classmethod
    def replay(cls, record: IdempotencyRecord) -> Submitted:
        return cls(job=record.job, replayed=True, response=record.response)
