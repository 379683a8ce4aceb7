"""Looking at photos: measuring what the training photo checks decide on, and making
the copy that is stored."""

from __future__ import annotations

from typing import Protocol

import msgspec

from genstudio.core.model.training.photos import PhotoMeasures, PhotoReason

#: the biggest photo file accepted (the HTTP edge refuses larger bodies unread)
MAX_PHOTO_BYTES = 25 * 1024 * 1024
#: formats a training photo may come in (by their bytes, not the declared type)
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp", "image/heic", "image/heif")


class AnalysedPhoto(msgspec.Struct, frozen=True, kw_only=True):
    """What the analyser made of one photo.

    Either ``problem`` is UNREADABLE or UNSUPPORTED_FORMAT and nothing else is set,
    or ``measures`` and the normalised photo (``data``, ``content_type``, ``width``,
    ``height``) are: orientation applied (EXIF), every metadata block stripped (EXIF
    incl. GPS, XMP, IPTC, ICC, comments), re-encoded (JPEG), at most the analyser's
    stored size on its long side.
    """

    problem: PhotoReason | None = None
    measures: PhotoMeasures | None = None
    source_type: str | None = None  # what the bytes were: image/jpeg, image/heic, ...
    data: bytes | None = None
    content_type: str | None = None
    width: int = 0
    height: int = 0


class PhotoAnalyser(Protocol):
    async def analyse(self, data: bytes) -> AnalysedPhoto:
        """Measure and normalise one photo, off the event loop.

        Never raises for what the bytes are: bytes that are no image, or a truncated,
        corrupt or decompression-bomb one, are UNREADABLE; an image in another format
        (GIF, BMP, TIFF, ...) is UNSUPPORTED_FORMAT. Measures are those of
        ``core.model.training.photos.PhotoMeasures`` (face boxes and the size in the
        original photo's pixels, orientation applied).
        """
        ...
