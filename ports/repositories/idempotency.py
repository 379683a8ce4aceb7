"""Idempotency records: answers kept for replays (the job a submission made)."""

from __future__ import annotations

import uuid
from typing import Protocol

from genstudio.core.model.idempotency import IdempotencyRecord


class IdempotencyRepository(Protocol):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        """Claim the key until the unit of work ends. False if another unit holds it."""
        ...

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        """The record stored under the key, without claiming it: its job as it was
        stored, or for a record from before migration 0012 its stored response, byte
        for byte."""
        ...

    async def claim(self, user_id: uuid.UUID, key: str) -> tuple[bool, IdempotencyRecord | None]:
        """``try_lock`` then, if it held, ``get`` (read under the lock), as one step:
        ``(False, None)`` while another unit holds the key."""
        ...

    async def add(self, record: IdempotencyRecord) -> None:
        """Store the answer to replay: the job (a snapshot of it as it is now), or a
        stored response (the caller holds the key). Raises DuplicateEntry
        if the key is stored: here, with a later call, or at the latest by ``commit``
        (then the unit can only roll back)."""
        ...
