"""Media assets and expected uploads."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from genstudio.core.model.media import MediaAsset


class MediaRepository(Protocol):
    async def add(self, asset: MediaAsset) -> None: ...

    async def get(self, asset_id: uuid.UUID) -> MediaAsset | None: ...

    async def list_for_job(self, job_id: uuid.UUID) -> list[MediaAsset]: ...


class UploadRepository(Protocol):
    """Uploads stored ahead of the transaction that records them (an intent log).

    An upload is *expected* (committed on its own) before its bytes are stored, and
    *settled* in the transaction that records it as media, or once it is deleted
    again; one still expected long after (the process died in between) is an orphan
    for the reconciler to delete.
    """

    async def expect(self, storage_key: str, user_id: uuid.UUID, at: datetime) -> None:
        """Idempotent: expecting a key again keeps the first time."""
        ...

    async def settle(self, storage_keys: Sequence[str]) -> None:
        """Forget the keys (unknown keys are ignored)."""
        ...

    async def stale(self, before: datetime, *, limit: int) -> list[str]:
        """Keys expected before ``before`` and never settled, oldest first."""
        ...
