"""What a submission answers: the job, and whether it was a replay."""

from __future__ import annotations

import uuid

import msgspec


class Submitted(msgspec.Struct, frozen=True):
    """What a submission answered: the status code and JSON body to send (and replay)."""

    status_code: int
    body: bytes
    job_id: uuid.UUID | None
    replayed: bool = False
