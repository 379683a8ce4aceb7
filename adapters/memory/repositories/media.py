"""Media assets and upload intents in memory."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from genstudio.adapters.memory.store import _Repo
from genstudio.core.model.media import MediaAsset


class InMemoryMedia(_Repo):
    async def add(self, asset: MediaAsset) -> None:
        self._d.media[asset.id] = asset

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None:
        return self._d.media.get(asset_id)

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]:
        return sorted(
            (m for m in self._d.media.values() if m.job_id == job_id), key=lambda m: m.created_at
        )


class InMemoryUploads(_Repo):
    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        self._d.upload_intents.setdefault(storage_key, (user_id, at))

    async def settle(self, storage_keys: Sequence[str]) -> None:
        for key in storage_keys:
            self._d.upload_intents.pop(key, None)

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        due = [(at, key) for key, (_, at) in self._d.upload_intents.items() if at < before]
        return [key for _, key in sorted(due)[:limit]]
