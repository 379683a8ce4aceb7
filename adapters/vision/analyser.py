"""``PhotoAnalyser`` with Pillow (decode, orientation, re-encode), OpenCV (sharpness,
faces) and imagehash (perceptual hash).

Everything runs in a worker thread (``asyncio.to_thread``): decoding and measuring a
12 MP photo is tens of milliseconds of CPU that must not stall the event loop. The
face model is the Haar cascade inside the ``opencv-python-headless`` 4.x wheel
(``cv2.data.haarcascades``): nothing is downloaded, ever.

Sizes, chosen for speed on 12 MP photos (bench/photo_checks.py, docs/performance.md)
without changing the verdicts:
- a JPEG is decoded at a reduced DCT scale (Pillow's ``draft``) no smaller than the
  stored size, so three quarters of a 12 MP photo's pixels are never decoded; the
  original size is read from the header first (``too_small``, face boxes);
- the stored copy is shrunk from the decoded pixels with OpenCV's bilinear when it
  shrinks by under 2x (every source pixel still weighs in, 7x faster than Pillow's
  antialiased resize) and by area averaging beyond;
- the measures have their own chain, in grey from the start (a third of the bytes
  to resize): decoded -> stored size -> ANALYSIS_SIDE -> DETECTION_SIDE. The first
  two steps are Pillow's antialiased bilinear, as the stored copy and the analysis
  size were made when the thresholds were set: the variance of the Laplacian
  depends on how the photo was shrunk (one bilinear step instead of two reads 20-40%
  sharper), and a blurry photo must stay blurry;
- sharpness (variance of the Laplacian) and luminance are measured with the long
  side at ANALYSIS_SIDE (never upscaled): the variance then means the same for a
  4000 px photo and a 1024 px one;
- faces are searched with the long side at DETECTION_SIDE, down to MIN_FACE_PX
  there; boxes are given back in the original photo's pixels.

OpenCV runs single-threaded (``cv2.setNumThreads(1)``, process-wide): photos are
checked one per worker thread, CV_WORKERS of them at once (one per core the process
may use), and OpenCV's own pool on top would only oversubscribe the cores.
"""

from __future__ import annotations

import asyncio
import io
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cv2
import imagehash
import numpy as np
import pillow_heif
from numpy.typing import NDArray
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from genstudio.core.model.training.photos import FaceBox, PhotoMeasures, PhotoReason
from genstudio.ports.vision import MAX_PHOTO_BYTES, AnalysedPhoto

pillow_heif.register_heif_opener()
cv2.setNumThreads(1)  # one photo per thread, one thread per photo (module docstring)

ANALYSIS_SIDE = 1024
DETECTION_SIDE = 512
MIN_FACE_PX = 24
#: the cascade's scale step: 1.2 would save a fifth of its time but misses faces of
#: 7-9% of the short side that 1.15 finds (docs/performance.md)
SCALE_FACTOR = 1.15
#: a photo claiming more pixels than this is refused before decoding (a bomb)
MAX_PIXELS = 80_000_000
CASCADE = "haarcascade_frontalface_default.xml"
#: photos checked at once: one per core this process may run on
CV_WORKERS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"})
_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/heic": "HEIF"}
_SRGB = ImageCms.createProfile("sRGB")

Pixels = NDArray[np.uint8]


def sniff_photo_type(data: bytes) -> str | None:
    """JPEG, PNG, WebP or HEIC/HEIF by magic bytes; else None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return "image/heic"
    return None


class OpenCvPhotoAnalyser:
    def __init__(self, *, stored_side: int = 1536, jpeg_quality: int = 90) -> None:
        if stored_side < DETECTION_SIDE:
            raise ValueError(f"stored_side must be at least {DETECTION_SIDE}")
        self.stored_side = stored_side
        self.jpeg_quality = jpeg_quality
        self._local = threading.local()  # a cascade per thread: detectMultiScale mutates it
        # more threads than cores only share the cores and hold more decoded photos
        self._pool = ThreadPoolExecutor(CV_WORKERS, thread_name_prefix="photo-checks")

    async def analyse(self, data: bytes) -> AnalysedPhoto:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.analyse_now, data)

    def analyse_now(self, data: bytes) -> AnalysedPhoto:
        """``analyse`` in the calling thread (the benchmark's per-core figure)."""
        source_type = sniff_photo_type(data)
        if source_type is None or len(data) > MAX_PHOTO_BYTES:
            return AnalysedPhoto(problem=_unknown(data))
        try:
            decoded, width, height = self._decode(data, source_type)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError):
            return AnalysedPhoto(problem=PhotoReason.UNREADABLE, source_type=source_type)
        # a fresh image from bare pixels: its info is empty, so no EXIF, GPS, XMP, ICC
        # or comment can be written
        stored = Image.fromarray(_shrink(np.asarray(decoded), self.stored_side))
        buffer = io.BytesIO()
        stored.save(buffer, "JPEG", quality=self.jpeg_quality, optimize=False)
        return AnalysedPhoto(
            measures=self._measure(decoded, width, height),
            source_type=source_type,
            data=buffer.getvalue(),
            content_type="image/jpeg",
            width=stored.width,
            height=stored.height,
        )

    def _decode(self, data: bytes, source_type: str) -> tuple[Image.Image, int, int]:
        """The photo upright, in sRGB, RGB, at least ``stored_side`` on the
        long side when the photo is (JPEGs are decoded no larger than they need), with
        its original size (orientation applied). Raises what Pillow raises on bad bytes."""
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image: Image.Image = Image.open(io.BytesIO(data), formats=[_FORMATS[source_type]])
            width, height = image.size  # from the header, before any reduced decode
            if width * height > MAX_PIXELS:
                raise Image.DecompressionBombError(f"{width}x{height} is too many pixels")
            orientation = image.getexif().get(0x0112, 1)
            if orientation in (5, 6, 7, 8):  # a quarter turn: the upright photo is transposed
                width, height = height, width
            if isinstance(image, JpegImageFile):
                scale = max(width, height) / self.stored_side
                if scale > 1:
                    # the largest DCT scale (1/2, 1/4, 1/8) that still gives this size
                    image.draft("RGB", (int(image.width / scale), int(image.height / scale)))
            image.load()
            icc = image.info.get("icc_profile")
            ImageOps.exif_transpose(image, in_place=True)  # no copy of an upright photo
            if icc:
                image = _to_srgb(image, icc)
            if image.mode != "RGB":
                image = image.convert("RGB")
            return image, width, height

    def _measure(self, decoded: Image.Image, width: int, height: int) -> PhotoMeasures:
        """Sharpness, luminance, faces and hash of the decoded photo in grey at
        ANALYSIS_SIDE; sizes and face boxes in the original's pixels."""
        analysis = _fit(_fit(decoded.convert("L"), self.stored_side), ANALYSIS_SIDE)
        grey: Pixels = np.asarray(analysis)
        total = grey.size
        counts = np.bincount(grey.ravel(), minlength=256)
        low, high = _stretch(counts, total)
        gain = 255.0 / (high - low)
        # the Laplacian's variance grows with the square of contrast: a dark but sharp
        # photo must read as dark, not also as blurry
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var()) * gain * gain
        mean = float(np.dot(counts, np.arange(256)) / total)
        # the cascade too sees the photo contrast-stretched: a dim face is still a face
        faces = self._faces(cv2.LUT(grey, _contrast_lut(low, gain)), width)
        return PhotoMeasures(
            width=width,
            height=height,
            sharpness=round(sharpness, 3),
            mean_luminance=round(mean, 3),
            dark_clipped=round(float(counts[:9].sum() / total), 5),
            bright_clipped=round(float(counts[247:].sum() / total), 5),
            faces=faces,
            phash=str(imagehash.phash(analysis)),
        )

    def _faces(self, grey: NDArray[Any], width: int) -> tuple[FaceBox, ...]:
        scale = DETECTION_SIDE / max(grey.shape)
        small: NDArray[Any] = grey
        if scale < 1:
            size = (round(grey.shape[1] * scale), round(grey.shape[0] * scale))
            small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        found: Any = self._cascade().detectMultiScale(
            small,
            scaleFactor=SCALE_FACTOR,
            minNeighbors=5,
            minSize=(MIN_FACE_PX, MIN_FACE_PX),
        )
        back = width / small.shape[1]
        boxes = [
            FaceBox(round(x * back), round(y * back), round(w * back), round(h * back))
            for x, y, w, h in (found if len(found) else [])
        ]
        return _distinct(sorted(boxes, key=lambda f: -f.width * f.height))

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade: cv2.CascadeClassifier | None = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)  # type: ignore[attr-defined]
            if cascade.empty():
                raise RuntimeError(f"OpenCV's {CASCADE} is missing from its wheel")
            self._local.cascade = cascade
        return cascade


def _contrast_lut(low: int, gain: float) -> Pixels:
    lut: Pixels = np.clip((np.arange(256) - low) * gain, 0, 255).astype(np.uint8)
    return lut


def _stretch(counts: NDArray[np.int64], total: int) -> tuple[int, int]:
    """The 1st and 99th percentiles of luminance, at least 16 apart (a flat photo is
    not stretched into noise)."""
    cumulative = np.cumsum(counts)
    low = int(np.searchsorted(cumulative, 0.01 * total))
    high = int(np.searchsorted(cumulative, 0.99 * total))
    return low, max(high, low + 16)


def _distinct(boxes: list[FaceBox]) -> tuple[FaceBox, ...]:
    """Largest first, without a box mostly inside a larger one: the cascade sometimes
    keeps one face at two scales."""
    kept: list[FaceBox] = []
    for box in boxes:
        if all(_overlap(box, big) < 0.5 * box.width * box.height for big in kept):
            kept.append(box)
    return tuple(kept)


def _overlap(a: FaceBox, b: FaceBox) -> int:
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return max(w, 0) * max(h, 0)


def _fit(image: Image.Image, side: int) -> Image.Image:
    """``image`` with its long side at most ``side`` (never enlarged)."""
    scale = side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def _shrink(pixels: Pixels, side: int) -> Pixels:
    """``pixels`` with the long side at most ``side`` (never enlarged): bilinear
    when shrinking by under 2x (every source pixel still weighs in), else area
    averaging (a HEIC or PNG at full size, a JPEG over 8x the stored side)."""
    rows, cols = pixels.shape[:2]
    scale = side / max(rows, cols)
    if scale >= 1:
        return pixels
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    interpolation = cv2.INTER_LINEAR if scale > 0.5 else cv2.INTER_AREA
    shrunk: Any = cv2.resize(pixels, size, interpolation=interpolation)
    return np.asarray(shrunk, dtype=np.uint8)


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Colours as the embedded profile meant them (an iPhone's Display P3), in sRGB:
    the profile itself is dropped with the rest of the metadata."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        converted = ImageCms.profileToProfile(image.convert("RGB"), source, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: the pixels as they are
    return converted if converted is not None else image


def _unknown(data: bytes) -> PhotoReason:
    """Not a format we take: an image of another kind (GIF, BMP, TIFF, ...) is
    UNSUPPORTED_FORMAT, anything else UNREADABLE."""
    if len(data) > MAX_PHOTO_BYTES:
        return PhotoReason.UNREADABLE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.open(io.BytesIO(data))  # identifies by header only, decodes nothing
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return PhotoReason.UNREADABLE
    return PhotoReason.UNSUPPORTED_FORMAT
