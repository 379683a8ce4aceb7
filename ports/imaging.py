"""Inspecting uploaded pictures: what they are, and a normalised PNG of them."""

from __future__ import annotations

from typing import Protocol

import msgspec

#: upload limits the API states (docs/api.md); an adapter enforces them in ``inspect``
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MIN_UPLOAD_SIDE, MAX_UPLOAD_SIDE = 64, 4096
ACCEPTED_TYPES = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")


class InspectedImage(msgspec.Struct, frozen=True, kw_only=True):
    """An upload that decoded: its size, the type its bytes really are, and a PNG of it.

    ``data`` is always PNG (HEIC, JPEG and WebP are converted; EXIF orientation is
    applied), in RGB, RGBA or, for masks, L mode. ``painted`` counts a mask's pixels
    to repaint (None for an ordinary image).
    """

    width: int
    height: int
    source_type: str
    data: bytes
    painted: int | None = None


class ImageInspector(Protocol):
    async def inspect(self, data: bytes, content_type: str | None, *, field: str) -> InspectedImage:
        """Check and normalise an uploaded image.

        Raises core.errors.InvalidInput naming ``field`` when the bytes are empty or
        over MAX_UPLOAD_BYTES, are not PNG, JPEG, WebP or HEIC/HEIF by their magic bytes,
        come with a declared ``content_type`` that is neither one of ACCEPTED_TYPES (or a
        common alias of one: image/jpg) nor generic (none, empty,
        application/octet-stream: the magic bytes decide), do not decode
        (truncated, corrupt, a decompression bomb), or have a side outside
        MIN_UPLOAD_SIDE..MAX_UPLOAD_SIDE.
        """
        ...

    async def inspect_mask(
        self, data: bytes, content_type: str | None, *, field: str, size: tuple[int, int]
    ) -> InspectedImage:
        """Check an inpainting mask and normalise it to a binary greyscale PNG.

        The mask is either binary (white, or any value >= 128, where to repaint) or an
        alpha mask (an image with transparency: the transparent pixels, alpha < 128, are
        where to repaint). The result is an L-mode PNG, 255 where to repaint and 0
        elsewhere. Raises InvalidInput naming ``field`` for everything ``inspect``
        refuses, for a size other than ``size``, and for a mask with nothing painted.
        """
        ...
