"""Media produced by jobs (and, later, uploaded by users). Private unless shared."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

import msgspec


class MediaKind(enum.StrEnum):
    IMAGE = "image"
    VIDEO = "video"


class MediaAsset(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    kind: MediaKind
    storage_key: str
    content_type: str
    width: int
    height: int
    byte_size: int
    prompt: str
    model_id: str
    job_id: uuid.UUID | None
    created_at: datetime
    is_public: bool = False
    duration_seconds: float | None = None
    thumbnail_key: str | None = None  # a video's poster frame (PNG)
    caption: str | None = None  # what a vision model saw: for search and moderation


def storage_key(user_id: uuid.UUID, media_id: uuid.UUID, extension: str) -> str:
    """Object keys live under the owner's id, so a bucket policy can scope them per user."""
    return f"{user_id}/{media_id}.{extension.lstrip('.')}"


def upload_key(user_id: uuid.UUID, upload_id: uuid.UUID) -> str:
    """Uploads (normalised to PNG) sit apart from generated media, still under the owner."""
    return f"{user_id}/uploads/{upload_id}.png"


def poster_key(video_key: str) -> str:
    """A video's poster frame sits beside it: ``<user>/<id>.mp4`` -> ``<user>/<id>.poster.png``."""
    stem, _, _ = video_key.rpartition(".")
    return f"{stem or video_key}.poster.png"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class Mp4Info(msgspec.Struct, frozen=True, kw_only=True):
    """What an MP4's boxes say about its (first) video track."""

    duration_seconds: float
    width: int
    height: int
    frames: int | None  # samples of the video track, when its sample table was found


_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"})


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The (type, body start, body end) of each box in ``data[start:end]``; [] if malformed."""
    found: list[tuple[bytes, int, int]] = []
    at = start
    while at + 8 <= end:
        size = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        header = 8
        if size == 1:
            if at + 16 > end:
                return []
            size = int.from_bytes(data[at + 8 : at + 16], "big")
            header = 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            return []
        found.append((kind, at + header, at + size))
        at += size
    return found if at == end else []


def _child(data: bytes, body: tuple[int, int], kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, *body):
        if k == kind:
            return s, e
    return None


def _u(data: bytes, at: int, n: int) -> int:
    return int.from_bytes(data[at : at + n], "big")


def mp4_info(data: bytes) -> Mp4Info | None:
    """Duration, frame size and frame count of an MP4 (ISO BMFF), or None if it is not one.

    Pure box parsing (ftyp, moov/mvhd, trak/tkhd, mdia/hdlr, stbl/stts): enough to check
    a provider's output without a decoder.
    """
    top = _boxes(data, 0, len(data))
    if not top or top[0][0] != b"ftyp":
        return None
    moov = next(((s, e) for k, s, e in top if k == b"moov"), None)
    if moov is None:
        return None
    mvhd = _child(data, moov, b"mvhd")
    if mvhd is None or mvhd[1] - mvhd[0] < 32:
        return None
    at = mvhd[0]
    if data[at] == 1:
        timescale, duration = _u(data, at + 20, 4), _u(data, at + 24, 8)
    else:
        timescale, duration = _u(data, at + 12, 4), _u(data, at + 16, 4)
    if timescale == 0:
        return None
    for kind, s, e in _boxes(data, *moov):
        if kind != b"trak":
            continue
        mdia = _child(data, (s, e), b"mdia")
        hdlr = _child(data, mdia, b"hdlr") if mdia else None
        if hdlr is None or data[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        tkhd = _child(data, (s, e), b"tkhd")
        if tkhd is None:
            continue
        tail = tkhd[1] - 8  # width and height: the box's last 8 bytes, 16.16 fixed point
        width, height = _u(data, tail, 4) >> 16, _u(data, tail + 4, 4) >> 16
        frames: int | None = None
        minf = _child(data, mdia, b"minf") if mdia else None
        stbl = _child(data, minf, b"stbl") if minf else None
        stts = _child(data, stbl, b"stts") if stbl else None
        if stts is not None:
            count = _u(data, stts[0] + 4, 4)
            entries = range(stts[0] + 8, min(stts[1], stts[0] + 8 + 8 * count), 8)
            frames = sum(_u(data, i, 4) for i in entries)
        return Mp4Info(
            duration_seconds=duration / timescale, width=width, height=height, frames=frames
        )
    return None


def sniff_content_type(data: bytes) -> str | None:
    """The media type by magic bytes, for the types we store: PNG and MP4."""
    if data.startswith(PNG_SIGNATURE):
        return "image/png"
    if data[4:8] == b"ftyp":
        return "video/mp4"
    return None


MAX_STORAGE_KEY = 1024


def check_storage_key(key: str) -> None:
    """Raise ValueError unless ``key`` is a plain relative path (``user/media.ext``) that
    every storage adapter can hold safely.

    Refused: empty keys and segments, ``.`` and ``..``, absolute paths, backslashes,
    control characters, segments starting with a dot (hidden files are the adapters'),
    and a first segment that could name a drive.
    """
    if not key or len(key) > MAX_STORAGE_KEY:
        raise ValueError(f"a storage key must have 1 to {MAX_STORAGE_KEY} characters")
    if "\\" in key or any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
        raise ValueError(f"storage key {key!r} has a backslash or a control character")
    if key.startswith("/"):
        raise ValueError(f"storage key {key!r} is absolute")
    for segment in key.split("/"):
        if not segment or segment.startswith("."):
            raise ValueError(f"storage key {key!r} has an empty, relative or hidden segment")
    if ":" in key.split("/", 1)[0]:  # "C:x" is a drive on Windows; refused everywhere alike
        raise ValueError(f"storage key {key!r} may name a drive")
