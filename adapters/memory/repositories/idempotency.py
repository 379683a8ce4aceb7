"""Idempotency records in memory."""

from __future__ import annotations

import uuid

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.errors import DuplicateEntry
from genstudio.core.model.idempotency import IdempotencyRecord


class InMemoryIdempotency(_Repo):
    async def try_lock(self, user_id: uuid.UUID, key: str) -> bool:
        lock = self._uow.store.lock_for(("idempotency", user_id, key))
        if ("idempotency", user_id, key) in self._uow.held:
            return True
        if lock.locked():
            return False
        await self._uow.acquire(("idempotency", user_id, key))
        return True

    async def get(self, user_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        return self._d.idempotency.get((user_id, key))

    async def claim(self, user_id: uuid.UUID, key: str) -> tuple[bool, IdempotencyRecord | None]:
        if not await self.try_lock(user_id, key):
            return False, None
        return True, await self.get(user_id, key)

    async def add(self, record: IdempotencyRecord) -> None:
        if (record.user_id, record.key) in self._d.idempotency:
            raise DuplicateEntry(f"idempotency key {record.key!r} exists")
        self._d.idempotency[(record.user_id, record.key)] = record
