"""Serving locally stored media behind signed, expiring URLs (embedded default)."""

from __future__ import annotations

from litestar import get
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import File

from adapters.local_storage import LocalFileStorage
from entrypoints.http.deps import RuntimeDep


@get("/media/{key:path}", tags=["media"], summary="A private object, through its signed URL")
async def media(
    key: FromPath[str], expires: FromQuery[int], sig: FromQuery[str], runtime: RuntimeDep
) -> File:
    storage = runtime.container.storage()
    if not isinstance(storage, LocalFileStorage):
        raise NotFoundException("media is served by the storage provider")
    key = key.lstrip("/")
    if not storage.verify(key, expires, sig):
        raise PermissionDeniedException("the link is invalid or has expired")
    try:
        path = storage.path_for(key)
    except ValueError:
        raise NotFoundException("no such object") from None
    if not path.is_file():
        raise NotFoundException("no such object")
    return File(
        path=path,
        media_type=storage.content_type_for(key),
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=300"},
    )
