"""Profile pictures: an upload made into the one small picture every client shows."""

from __future__ import annotations

from typing import Protocol

#: the stored avatar: a square JPEG of this side
AVATAR_SIDE = 512


class AvatarImages(Protocol):
    async def avatar(self, data: bytes, content_type: str | None, *, field: str) -> bytes:
        """A square JPEG of AVATAR_SIDE pixels, centre-cropped, EXIF orientation applied,
        every metadata block (EXIF incl. GPS, XMP, ICC, comments) removed.

        Raises core.errors.InvalidInput naming ``field`` for everything
        ``ports.imaging.ImageInspector.inspect`` refuses (empty, too large, not an
        image, corrupt, a decompression bomb, sides out of range).
        """
        ...
