"""Avatars with Pillow: the inspector's checked decode, cropped, shrunk, re-encoded."""

from __future__ import annotations

import asyncio
import io

from PIL import Image, ImageOps

from genstudio.adapters.imaging.inspector import _open
from genstudio.ports.avatars import AVATAR_SIDE


def make_avatar(data: bytes, content_type: str | None, field: str) -> bytes:
    image, _ = _open(data, content_type, field)  # refusals, bombs, EXIF orientation
    image = ImageOps.fit(image.convert("RGB"), (AVATAR_SIDE, AVATAR_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # a fresh encode of bare pixels: no EXIF, XMP, ICC or comment block is written
    image.save(out, format="JPEG", quality=88, optimize=True)
    return out.getvalue()


class PillowAvatars:
    async def avatar(self, data: bytes, content_type: str | None, *, field: str) -> bytes:
        # a 4096-pixel decode is tens of milliseconds: off the event loop
        return await asyncio.to_thread(make_avatar, data, content_type, field)
