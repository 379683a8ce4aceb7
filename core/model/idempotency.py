"""Idempotency records: a credit-moving request replays its first response."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

import msgspec

from core.model.errors import InvalidInput

MAX_KEY_LENGTH = 255


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    key: str
    request_hash: str
    status_code: int
    response_body: bytes
    created_at: datetime


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
