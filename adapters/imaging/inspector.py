"""``ImageInspector`` with Pillow: magic bytes, limits, a guarded decode, PNG out.

Decoding runs in a worker thread. Pillow's decompression-bomb guard is not trusted
alone: the declared size is checked before any pixel is decoded, so a tiny file that
claims 60000x60000 is refused without allocating it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import warnings
from typing import cast

from PIL import Image, ImageOps, UnidentifiedImageError

from genstudio.core.model.errors import InvalidInput
from genstudio.ports.imaging import (
    ACCEPTED_TYPES,
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_SIDE,
    MIN_UPLOAD_SIDE,
    InspectedImage,
)


@functools.cache
def _heif_registered() -> None:
    """Pillow reads HEIC/HEIF once pillow-heif's opener is registered: done with the
    first such upload, so a process that never meets one (a worker) never loads
    libheif (~7 MiB)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


#: declared types that say nothing (a client that does not know): the bytes decide
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
#: names clients use for an accepted type (React Native image pickers send image/jpg)
_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_PILLOW_FORMATS = {
    "image/png": "PNG",
    "image/jpeg": "JPEG",
    "image/webp": "WEBP",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
}


def sniff_image_type(data: bytes) -> str | None:
    """The upload's type by its magic bytes: PNG, JPEG, WebP or HEIC/HEIF; else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heic" if data[8:12] in (b"heic", b"heix", b"heim", b"heis") else "image/heif"
    return None


def _refuse(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _open(data: bytes, content_type: str | None, field: str) -> tuple[Image.Image, str]:
    if not data:
        raise _refuse(field, "the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise _refuse(field, f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB")
    declared = (content_type or "").split(";")[0].strip().lower()
    declared = _ALIASES.get(declared, declared)
    if declared not in _GENERIC_TYPES and declared not in ACCEPTED_TYPES:
        raise _refuse(field, f"{declared} is not accepted; send PNG, JPEG, WebP or HEIC")
    actual = sniff_image_type(data)
    if actual is None:
        raise _refuse(field, "the file is not a PNG, JPEG, WebP or HEIC image")
    fmt = _PILLOW_FORMATS[actual]
    if fmt == "HEIF":
        _heif_registered()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = probe.size
            _check_size(width, height, field)
            probe.verify()  # structure and checksums (PNG), before any full decode
            image: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
            image.load()
            image = ImageOps.exif_transpose(image)
    except InvalidInput:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _refuse(field, f"the image does not decode ({exc})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _refuse(field, "the image has too many pixels") from None
    _check_size(*image.size, field)
    return image, actual


def _check_size(width: int, height: int, field: str) -> None:
    lo, hi = MIN_UPLOAD_SIDE, MAX_UPLOAD_SIDE
    if not (lo <= width <= hi and lo <= height <= hi):
        raise _refuse(
            field, f"the image is {width}x{height}; each side must be between {lo} and {hi} pixels"
        )


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _png(image: Image.Image) -> bytes:
    image.info.clear()  # no metadata (EXIF with GPS included) survives the upload
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _normalise(data: bytes, content_type: str | None, field: str) -> InspectedImage:
    image, actual = _open(data, content_type, field)
    try:
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    except (OSError, ValueError) as exc:
        raise _refuse(field, f"the image's pixel format is not supported ({exc})") from None
    return InspectedImage(
        width=image.width, height=image.height, source_type=actual, data=_png(image)
    )


def _normalise_mask(
    data: bytes, content_type: str | None, field: str, size: tuple[int, int]
) -> InspectedImage:
    image, actual = _open(data, content_type, field)
    if image.size != size:
        raise _refuse(
            field,
            f"the mask is {image.width}x{image.height}; it must be the image's size, "
            f"{size[0]}x{size[1]}",
        )
    try:
        if _has_alpha(image):
            alpha = image.convert("RGBA").getchannel("A")
            lowest, _ = cast("tuple[int, int]", alpha.getextrema())  # one band: (min, max)
            if lowest < 255:
                # an alpha mask: what is erased (transparent) is what to repaint
                binary = alpha.point(lambda a: 255 if a < 128 else 0)
            else:
                binary = image.convert("L").point(lambda v: 255 if v >= 128 else 0)
        else:
            binary = image.convert("L").point(lambda v: 255 if v >= 128 else 0)
    except (OSError, ValueError) as exc:
        raise _refuse(field, f"the mask's pixel format is not supported ({exc})") from None
    painted = binary.histogram()[255]
    if painted == 0:
        raise _refuse(field, "the mask marks no pixel to repaint")
    return InspectedImage(
        width=binary.width,
        height=binary.height,
        source_type=actual,
        data=_png(binary),
        painted=painted,
    )


class PillowImageInspector:
    async def inspect(self, data: bytes, content_type: str | None, *, field: str) -> InspectedImage:
        return await asyncio.to_thread(_normalise, data, content_type, field)

    async def inspect_mask(
        self, data: bytes, content_type: str | None, *, field: str, size: tuple[int, int]
    ) -> InspectedImage:
        return await asyncio.to_thread(_normalise_mask, data, content_type, field, size)
