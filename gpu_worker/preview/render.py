"""Preview pictures on the CPU: deterministic, distinct per prompt and seed, labelled.

Not a diffusion model: a gradient and shapes coloured by the prompt's words, with
"PREVIEW" written on it, so a preview can never pass for a real render.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
import re

from PIL import Image, ImageDraw, ImageFont, ImageOps

LABEL = "PREVIEW"
_CANVAS_MAX = 256  # shapes are drawn this small at most, then scaled: any size costs the same
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

Rgb = tuple[int, int, int]


def _rng(*parts: object) -> random.Random:
    digest = hashlib.sha256(repr(parts).encode("utf-8", "surrogatepass")).digest()
    return random.Random(digest)


def _colour(word: str, rng: random.Random) -> Rgb:
    hue = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:4]) / 2**32
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.5, 0.9), rng.uniform(0.5, 1.0))
    return round(r * 255), round(g * 255), round(b * 255)


def picture(
    prompt: str, negative_prompt: str, seed: int | None, width: int, height: int, index: int = 0
) -> Image.Image:
    """An RGB picture of exactly ``width`` x ``height``; the same for the same arguments."""
    rng = _rng(prompt, negative_prompt, seed, width, height, index)
    words = [w.lower() for w in _WORD.findall(prompt)] or ["untitled"]
    palette = [_colour(w, rng) for w in words[:8]]
    while len(palette) < 3:
        palette.append(_colour(f"{words[0]}#{len(palette)}", rng))
    scale = min(1.0, _CANVAS_MAX / max(width, height))
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    ramp = Image.linear_gradient("L").rotate(rng.uniform(0, 360), fillcolor=128)
    ramp = ramp.resize((cw, ch), Image.Resampling.BILINEAR)
    dark, light = rng.sample(palette, 2)
    canvas = ImageOps.colorize(ramp, black=tuple(c // 3 for c in dark), white=light).convert("RGB")
    draw = ImageDraw.Draw(canvas, "RGBA")
    for _ in range(rng.randint(10, 24)):
        r, g, b = rng.choice(palette)
        cx, cy = rng.uniform(0, cw), rng.uniform(0, ch)
        size = rng.uniform(0.05, 0.4) * min(cw, ch)
        box = (cx - size, cy - size, cx + size, cy + size)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=(r, g, b, rng.randint(60, 200)))
        else:
            draw.rectangle(box, fill=(r, g, b, rng.randint(60, 200)))
    image = canvas.resize((width, height), Image.Resampling.BICUBIC)
    label = ImageDraw.Draw(image)
    label.text((4, 4), LABEL, fill=(255, 255, 255), font=ImageFont.load_default())
    return image


def png(image: Image.Image) -> bytes:
    """PNG bytes without metadata: equal pixels, equal bytes."""
    image.info.clear()
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def inpaint(
    image_png: bytes, mask_png: bytes, prompt: str, negative_prompt: str, seed: int | None
) -> bytes:
    """The prompt's picture painted through the mask (>= 128), every other pixel kept."""
    image = decode(image_png)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    mask = decode(mask_png).convert("L")
    if mask.size != image.size:
        raise ValueError(
            f"the mask is {mask.size[0]}x{mask.size[1]}, the image {image.size[0]}x{image.size[1]}"
        )
    binary = mask.point(lambda v: 255 if v >= 128 else 0).convert("1")
    paint = picture(prompt, negative_prompt, seed, image.width, image.height).convert(image.mode)
    result = image.copy()
    result.paste(paint, (0, 0), binary)
    return png(result)


def tinted(image: Image.Image, colour: Rgb, amount: float) -> Image.Image:
    """``image`` blended towards ``colour`` by ``amount`` (0-1): how a preview shows a LoRA."""
    if amount <= 0:
        return image
    overlay = Image.new("RGB", image.size, colour)
    return Image.blend(image.convert("RGB"), overlay, min(1.0, amount))
