"""Real photographs for the photo checks, and the bad photos made from them.

scikit-image ships ``astronaut`` (a real face, 512x512) and ``chelsea`` (a cat) inside
its wheel (``skimage/data/*.png``): nothing is downloaded.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data


def astronaut(side: int = 1024) -> Image.Image:
    """The astronaut, upscaled so the photo clears the minimum size comfortably."""
    face = Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]
    return face.resize((side, side), Image.Resampling.LANCZOS)


def cat() -> Image.Image:
    """The cat, upscaled past the minimum size and sharpened back."""
    cat = Image.fromarray(data.chelsea())  # type: ignore[no-untyped-call]
    big = cat.resize((902, 600), Image.Resampling.LANCZOS)
    return big.filter(ImageFilter.UnsharpMask(radius=2, percent=150))


def jpeg(image: Image.Image, quality: int = 92, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **save)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **save: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def blurred(image: Image.Image) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(8))


def darkened(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(0.15)


def overexposed(image: Image.Image) -> Image.Image:
    return ImageEnhance.Brightness(image).enhance(1.7)  # a third of it clipped white


def shrunk(image: Image.Image) -> Image.Image:
    return image.resize((384, 384), Image.Resampling.LANCZOS)


def two_faces(image: Image.Image) -> Image.Image:
    side = Image.new("RGB", (image.width * 2, image.height))
    side.paste(image, (0, 0))
    side.paste(image, (image.width, 0))
    return side


def small_face(image: Image.Image) -> Image.Image:
    """The astronaut small on a big textured canvas: the face is found, but small."""
    rng = np.random.default_rng(7)
    noise: NDArray[np.uint8] = rng.integers(60, 190, size=(1600, 1600, 3), dtype=np.uint8)
    canvas = Image.fromarray(noise).filter(ImageFilter.GaussianBlur(1))
    canvas.paste(image.resize((560, 560), Image.Resampling.LANCZOS), (520, 520))
    return canvas


def twelve_megapixels(seed: int = 0) -> Image.Image:
    """The astronaut at 4000x3000 with sensor-like noise: a phone photo's pixel count."""
    rng = np.random.default_rng(seed)
    face = Image.fromarray(data.astronaut())  # type: ignore[no-untyped-call]
    base = np.asarray(face.resize((3000, 3000)), dtype=np.int16)
    canvas = np.full((3000, 4000, 3), 128, dtype=np.int16)
    canvas[:, 500:3500] = base
    canvas += rng.integers(-12, 13, size=canvas.shape, dtype=np.int16)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
