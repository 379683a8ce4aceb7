"""Media storage: private objects, reachable only through expiring signed URLs."""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(Exception):
    pass


class MediaStorage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store (or overwrite) the object under ``key``."""
        ...

    async def get(self, key: str) -> bytes:
        """Raises ObjectNotFound."""
        ...

    async def signed_url(self, key: str, expires_in: int) -> str:
        """A URL that serves the object for ``expires_in`` seconds, then refuses."""
        ...

    async def delete(self, key: str) -> None:
        """Deleting a missing object is not an error."""
        ...
