"""Media on the local disk, served by the app through HMAC-signed, expiring URLs.

Layout: the object ``<user_id>/<media_id>.png`` is the file ``root/<user_id>/<media_id>.png``.
A content type that its extension would not give is kept beside it in a hidden sidecar
(``.<name>.content-type``); keys may not name hidden files, so no key reaches a sidecar
or a temporary file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import os
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from genstudio.core.model.media import check_storage_key
from genstudio.ports.storage import ObjectNotFound

CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "mp4": "video/mp4",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_SIDECAR_SUFFIX = ".content-type"


check_key = check_storage_key  # one set of key rules for every storage adapter


def content_type_for_extension(key: str) -> str:
    _, dot, ext = key.rpartition(".")
    return CONTENT_TYPES.get(ext.lower(), DEFAULT_CONTENT_TYPE) if dot else DEFAULT_CONTENT_TYPE


class LocalFileStorage:
    """``MediaStorage`` on a directory; writes are atomic (a temp file, then a rename)."""

    def __init__(
        self,
        root: Path,
        *,
        base_url: str,
        secret: bytes,
        time_source: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("the URL-signing secret is empty")
        self.root = Path(root).absolute()
        self.base_url = base_url.rstrip("/")
        self._secret = bytes(secret)
        self._time = time_source

    # -- the port -----------------------------------------------------------------

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(self._put, path, bytes(data), content_type)

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    async def signed_url(self, key: str, expires_in: int) -> str:
        path = self.path_for(key)
        if not await asyncio.to_thread(path.is_file):
            raise ObjectNotFound(key)
        expires = int(self._time()) + int(expires_in)
        sig = self.sign(key, expires)
        quoted = urllib.parse.quote(key, safe="/")
        return f"{self.base_url}/media/{quoted}?expires={expires}&sig={sig}"

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        await asyncio.to_thread(self._delete, path)

    # -- for the app that serves /media/{key} -------------------------------------

    def sign(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, key: str, expires: int, sig: str, now: float | None = None) -> bool:
        """Whether ``sig`` is this storage's signature of (key, expires), not yet expired."""
        try:
            check_key(key)
        except ValueError:
            return False
        if (self._time() if now is None else now) >= expires:
            return False
        expected = self.sign(key, expires).encode()
        return hmac.compare_digest(expected, sig.encode("utf-8", "surrogatepass"))

    def path_for(self, key: str) -> Path:
        """The object's file (which may not exist). Raises ValueError for a bad key."""
        check_key(key)
        return self.root.joinpath(*key.split("/"))

    def content_type_for(self, key: str) -> str:
        """The type given to ``put``, else the one its extension implies."""
        try:
            return self._sidecar(self.path_for(key)).read_text("utf-8").strip()
        except (FileNotFoundError, NotADirectoryError):
            return content_type_for_extension(key)

    # -- blocking helpers, run in a thread -----------------------------------------

    @staticmethod
    def _sidecar(path: Path) -> Path:
        return path.with_name(f".{path.name}{_SIDECAR_SUFFIX}")

    def _put(self, path: Path, data: bytes, content_type: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        sidecar = self._sidecar(path)
        # The type goes first: a crash in between leaves a type for a missing or old
        # object, never a new object described by an old type.
        if content_type and content_type != content_type_for_extension(path.name):
            _write_atomically(sidecar, content_type.encode("utf-8"))
        else:
            sidecar.unlink(missing_ok=True)
        _write_atomically(path, data)

    def _delete(self, path: Path) -> None:
        if path.is_dir():
            return  # a key prefix, not an object
        path.unlink(missing_ok=True)
        self._sidecar(path).unlink(missing_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never a part of either."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
