"""Media storage: private objects, reachable only through expiring signed URLs."""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(Exception):
    pass


class StorageUnavailable(Exception):
    """The storage service failed us: unreachable, timed out, a server error, rate limited
    past the adapter's retries, or refusing our credentials. Nothing was changed for
    certain; trying again later (as a job retry) is the way out.
    """


class MediaStorage(Protocol):
    """Keys are ``<user_id>/<media_id>.<ext>`` (core.media.storage_key); an adapter may
    refuse other keys with ValueError. A remote adapter raises StorageUnavailable from any
    method when its service fails; ObjectNotFound is only ever about the object."""

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
