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


def storage_key(user_id: uuid.UUID, media_id: uuid.UUID, extension: str) -> str:
    """Object keys live under the owner's id, so a bucket policy can scope them per user."""
    return f"{user_id}/{media_id}.{extension.lstrip('.')}"


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_dimensions(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None if ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
