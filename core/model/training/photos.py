"""Training photos: sets of a user's photos and the verdict on each, decided before
anything is charged.

The analyser (``ports.vision.PhotoAnalyser``) measures a photo; the rules here decide
from those numbers alone, so every threshold is a setting and every rule is testable
without pixels. A verdict lists every reason that applies, not just the first: the app
shows the user all that is wrong with a photo at once.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Iterable
from datetime import datetime

import msgspec

from genstudio.core.model.errors import IllegalTransition

#: a set holds at most this many photos (accepted or not: a rejected one still takes
#: room until the user deletes it); also the most a training job can use
MAX_PHOTOS_PER_SET = 30
#: a training job needs at least this many accepted photos (issue #16)
MIN_ACCEPTED_PHOTOS = 10
MAX_SET_NAME = 100


class PhotoLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How much a user may upload for free (settings ``GENSTUDIO_PHOTO_*``)."""

    max_photos_per_set: int = MAX_PHOTOS_PER_SET
    max_sets_per_user: int = 20


class PhotoSetFull(IllegalTransition):
    """The set holds its maximum of photos; delete one first (409)."""

    code = "photo_set_full"


class TooManyPhotoSets(IllegalTransition):
    """The user holds their maximum of photo sets; delete one first (409)."""

    code = "too_many_photo_sets"


class PhotoSetInUse(IllegalTransition):
    """A training job that uses the set is queued or running: its photos stay (409)."""

    code = "photo_set_in_use"


class PhotoReason(enum.StrEnum):
    """Why a photo is unusable; the app maps each to a message of its own."""

    UNREADABLE = "unreadable"  # not an image, truncated, corrupt
    UNSUPPORTED_FORMAT = "unsupported_format"  # an image, but not JPEG/PNG/WebP/HEIC
    TOO_SMALL = "too_small"  # short side under min_side
    BLURRY = "blurry"  # variance of the Laplacian under min_sharpness
    TOO_DARK = "too_dark"
    OVEREXPOSED = "overexposed"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    FACE_TOO_SMALL = "face_too_small"
    DUPLICATE = "duplicate"  # a near copy of another accepted photo of the set


#: reasons that mean nothing could be measured (no stored file, no other reason)
UNMEASURED = frozenset({PhotoReason.UNREADABLE, PhotoReason.UNSUPPORTED_FORMAT})


class FaceBox(msgspec.Struct, frozen=True):
    """A detected face, in pixels of the (orientation-corrected) original photo."""

    x: int
    y: int
    width: int
    height: int


class PhotoMeasures(msgspec.Struct, frozen=True, kw_only=True):
    """What the analyser measured, orientation applied.

    ``sharpness`` is the variance of the Laplacian of the greyscale photo scaled to a
    fixed analysis size (the analyser's, stated in its docstring), so it does not
    grow or shrink with the photo's resolution. Luminance is Rec. 601 luma, 0..255;
    ``dark_clipped`` / ``bright_clipped`` are the fractions of pixels at or under 8
    and at or over 247. ``phash`` is a 64-bit perceptual hash as 16 hex digits.
    """

    width: int
    height: int
    sharpness: float
    mean_luminance: float
    dark_clipped: float
    bright_clipped: float
    faces: tuple[FaceBox, ...]
    phash: str


class PhotoThresholds(msgspec.Struct, frozen=True, kw_only=True):
    """The verdict's thresholds (settings ``GENSTUDIO_PHOTO_*``, README)."""

    min_side: int = 512
    min_sharpness: float = 60.0
    min_mean_luminance: float = 50.0
    max_mean_luminance: float = 205.0
    max_dark_clipped: float = 0.40
    max_bright_clipped: float = 0.25
    #: the largest face's short side over the photo's short side
    min_face_fraction: float = 0.10
    #: a second face at least this large (relative to the largest) makes several;
    #: smaller ones are people in the background
    second_face_ratio: float = 0.5
    #: Hamming distance (of 64 bits) within which two photos are duplicates
    duplicate_distance: int = 6

    def __post_init__(self) -> None:
        if self.min_side < 1 or self.min_sharpness < 0 or self.duplicate_distance < 0:
            raise ValueError("photo thresholds must be positive")
        if not 0 <= self.min_mean_luminance < self.max_mean_luminance <= 255:
            raise ValueError("min_mean_luminance must be under max_mean_luminance, in 0..255")
        for name in ("max_dark_clipped", "max_bright_clipped", "min_face_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a fraction in 0..1")
        if not 0 < self.second_face_ratio <= 1:
            raise ValueError("second_face_ratio must be in (0, 1]")


class Verdict(msgspec.Struct, frozen=True):
    """``accepted`` iff no reasons; ``score`` 0..100 ranks photos by quality (sharpness,
    exposure, face size, resolution) whether or not they are accepted."""

    accepted: bool
    reasons: tuple[PhotoReason, ...]
    score: int


class PhotoSet(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    user_id: uuid.UUID
    name: str | None
    created_at: datetime


class Photo(msgspec.Struct, frozen=True, kw_only=True):
    """One uploaded photo. ``storage_key`` is None when nothing could be read (the
    verdict says why); otherwise it holds the normalised photo: orientation applied,
    every metadata block (EXIF, GPS, XMP, ICC) gone, re-encoded as ``content_type``."""

    id: uuid.UUID
    set_id: uuid.UUID
    user_id: uuid.UUID
    storage_key: str | None
    content_type: str | None
    width: int  # of the stored photo (0 when none)
    height: int
    byte_size: int
    measures: PhotoMeasures | None
    verdict: Verdict
    created_at: datetime


def photo_key(user_id: uuid.UUID, set_id: uuid.UUID, photo_id: uuid.UUID) -> str:
    """Under the owner's prefix (like every media key), apart from generated media."""
    return f"{user_id}/training/{set_id}/{photo_id}.jpg"


def check_set_name(name: str | None) -> str | None:
    """The name trimmed (None when blank); ValueError over MAX_SET_NAME characters."""
    if name is None or not name.strip():
        return None
    name = name.strip()
    if len(name) > MAX_SET_NAME:
        raise ValueError(f"a set's name has at most {MAX_SET_NAME} characters")
    return name


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes of the same length."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def unmeasured(reason: PhotoReason) -> Verdict:
    """The verdict on a photo that could not be measured at all."""
    if reason not in UNMEASURED:
        raise ValueError(f"{reason} is decided from measures, not alone")
    return Verdict(accepted=False, reasons=(reason,), score=0)


def judge(
    m: PhotoMeasures, thresholds: PhotoThresholds, accepted_hashes: Iterable[str] = ()
) -> Verdict:
    """The verdict on measured photo ``m``; ``accepted_hashes`` are the perceptual
    hashes of the set's photos accepted so far (the first of two near copies stays)."""
    t = thresholds
    reasons: list[PhotoReason] = []
    short = min(m.width, m.height)
    if short < t.min_side:
        reasons.append(PhotoReason.TOO_SMALL)
    if m.sharpness < t.min_sharpness:
        reasons.append(PhotoReason.BLURRY)
    if m.mean_luminance < t.min_mean_luminance or m.dark_clipped > t.max_dark_clipped:
        reasons.append(PhotoReason.TOO_DARK)
    if m.mean_luminance > t.max_mean_luminance or m.bright_clipped > t.max_bright_clipped:
        reasons.append(PhotoReason.OVEREXPOSED)
    largest = max((min(f.width, f.height) for f in m.faces), default=0)
    if largest == 0:
        reasons.append(PhotoReason.NO_FACE)
    else:
        prominent = [f for f in m.faces if min(f.width, f.height) >= t.second_face_ratio * largest]
        if len(prominent) > 1:
            reasons.append(PhotoReason.SEVERAL_FACES)
        if largest < t.min_face_fraction * short:
            reasons.append(PhotoReason.FACE_TOO_SMALL)
    if any(hamming(m.phash, h) <= t.duplicate_distance for h in accepted_hashes):
        reasons.append(PhotoReason.DUPLICATE)
    return Verdict(accepted=not reasons, reasons=tuple(reasons), score=score(m, t))


def score(m: PhotoMeasures, t: PhotoThresholds) -> int:
    """0..100: sharpness (log scale, full at 8x the minimum), exposure (mid-grey best,
    clipping costs), the face's size (full at 3x the minimum) and resolution (full at
    twice the minimum side), weighted 35/25/25/15."""
    short = min(m.width, m.height)
    floor = max(t.min_sharpness, 1.0)
    # a third at the minimum, full at 8x it
    sharp = _clamp((math.log2(m.sharpness / floor) + 1.5) / 4.5) if m.sharpness > 0 else 0.0
    exposure = _clamp(1 - abs(m.mean_luminance - 128) / 128 - m.dark_clipped - m.bright_clipped)
    largest = max((min(f.width, f.height) for f in m.faces), default=0)
    face = _clamp(largest / (3 * t.min_face_fraction * short)) if short and largest else 0.0
    resolution = _clamp(short / (2 * t.min_side))
    return round(100 * (0.35 * sharp + 0.25 * exposure + 0.25 * face + 0.15 * resolution))


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))
