"""Serving locally stored media behind signed, expiring URLs (embedded default).

GET and HEAD, with single byte ranges (RFC 9110 §14): iOS's AVPlayer reads a video
by ranges and will not play one served only whole.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod
from litestar.exceptions import NotFoundException, PermissionDeniedException
from litestar.params import FromPath, FromQuery
from litestar.response import File

from genstudio.adapters.local_storage import LocalFileStorage
from genstudio.core.services import queries
from genstudio.entrypoints.http.deps import StorageDep, UowFactoryDep

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """The range lies wholly past the end of the file."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range ``header`` asks for, as (first, last) byte inclusive and clamped
    to the file; None to send the whole file (no header, several ranges, or one this
    does not understand: RFC 9110 lets a server ignore Range). Raises Unsatisfiable
    for a range that starts past the end."""
    match = _RANGE.fullmatch((header or "").strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        if int(last) == 0:
            raise Unsatisfiable
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size:
        raise Unsatisfiable
    if end < start:
        return None
    return start, end


def _read(path: Path, first: int, last: int) -> bytes:
    with path.open("rb") as f:
        f.seek(first)
        return f.read(last - first + 1)


@route(
    "/media/{key:path}",
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    tags=["media"],
    summary="A private object, through its signed URL (byte ranges supported)",
)
async def media(
    request: Request[Any, Any, Any],
    key: FromPath[str],
    storage: StorageDep,
    uow_factory: UowFactoryDep,
    expires: FromQuery[str | None] = None,
    sig: FromQuery[str | None] = None,
) -> Response[bytes] | File:
    if not isinstance(storage, LocalFileStorage):
        raise NotFoundException("media is served by the storage provider")
    key = key.lstrip("/")
    # a missing or mangled signature is the same as a wrong one: 403, never 422
    if expires is None or not expires.isdigit() or not sig:
        raise PermissionDeniedException("the link is invalid or has expired")
    if not storage.verify(key, int(expires), sig):
        raise PermissionDeniedException("the link is invalid or has expired")
    try:
        path = storage.path_for(key)
    except ValueError:
        raise NotFoundException("no such object") from None
    if not path.is_file():
        raise NotFoundException("no such object")
    media_type = storage.content_type_for(key)
    headers = {"Cache-Control": "private, max-age=300", "Accept-Ranges": "bytes"}
    size = path.stat().st_size
    try:
        wanted = byte_range(request.headers.get("range"), size)
    except Unsatisfiable:
        return Response(
            b"", status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
        )
    if wanted is None:
        return File(
            path=path,
            media_type=media_type,
            filename=await queries.download_name(uow_factory, key),
            content_disposition_type="inline",
            headers=headers,
        )
    first, last = wanted
    body = b"" if request.method == "HEAD" else await asyncio.to_thread(_read, path, first, last)
    return Response(
        body,
        status_code=206,
        media_type=media_type,
        headers={
            **headers,
            "Content-Range": f"bytes {first}-{last}/{size}",
            "Content-Length": str(last - first + 1),
        },
    )
