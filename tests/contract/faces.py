"""Distinct, acceptable face photos for training tests: crops and mirror images of
scikit-image's astronaut (a real photograph), each far enough from the others'
perceptual hash not to count as a duplicate under the default thresholds."""

from __future__ import annotations

from PIL import Image, ImageOps

from tests.contract import photos as p

_CROPS = (
    (0, 0, 1024), (100, 0, 768), (40, 40, 900), (0, 60, 880), (120, 20, 800),
    (60, 0, 840), (20, 100, 860), (80, 80, 780), (30, 10, 900), (10, 30, 940),
    (90, 40, 760),
)  # fmt: skip


def distinct_faces(count: int = 10) -> list[Image.Image]:
    """Up to 11 photos the checks accept, each a distinct shot."""
    if count > len(_CROPS):
        raise ValueError(f"at most {len(_CROPS)} distinct faces")
    face = p.astronaut()
    shots = []
    for n, (x, y, side) in enumerate(_CROPS[:count]):
        crop = face.crop((x, y, x + side, y + side))
        shots.append(crop if n % 2 == 0 else ImageOps.mirror(crop))
    return shots


def distinct_face_jpegs(count: int = 10) -> list[bytes]:
    return [p.jpeg(image) for image in distinct_faces(count)]
