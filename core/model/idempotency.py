"""Idempotency records: a credit-moving request replays its first answer."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import msgspec

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.jobs import Job

MAX_KEY_LENGTH = 255


class StoredResponse(msgspec.Struct, frozen=True):
    """An answer as releases before migration 0012 stored it: the status code and the
    bytes they sent, replayed as they are (the core never reads them)."""

    status_code: int
    body: bytes


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A credit-moving request's first answer, kept for its retries: the job it
    submitted, as it was then. The edge renders a replay from it as it rendered the
    first answer.

    Records written before migration 0012 hold ``response`` (the rendered answer)
    instead of ``job``; a record holds exactly one of the two.
    """

    user_id: uuid.UUID
    key: str
    request_hash: str
    created_at: datetime
    job: Job | None = None
    response: StoredResponse | None = None

    def __post_init__(self) -> None:
        if (self.job is None) == (self.response is None):
            raise ValueError("an idempotency record holds a job or a stored response")


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def validate_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters",
            field="Idempotency-Key",
        )
    return key
