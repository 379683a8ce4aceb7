"""A deterministic CPU "preview" image: a gradient, shapes coloured by the prompt, a label.

Not a diffusion model. It exists so the embedded default produces real, distinct PNG
files without a GPU, and it says so on every image it makes.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import random
import re
import struct

from PIL import Image, ImageDraw, ImageFont, ImageOps

LABEL = "PREVIEW RENDERER"
EXCERPT_CHARS = 48
# Shapes are drawn on a canvas at most this big, then scaled up: the upscale softens
# them and keeps a 2048x2048 render as cheap as a 512x512 one.
_CANVAS_MAX = 512
_WORD = re.compile(r"[^\W_]+", re.UNICODE)

Rgb = tuple[int, int, int]


def render_png(
    *,
    prompt: str,
    negative_prompt: str,
    seed: int | None,
    width: int,
    height: int,
    index: int = 0,
) -> bytes:
    """A PNG of exactly ``width`` x ``height``, the same bytes for the same arguments.

    ``seed=None`` derives the randomness from the prompt alone, so an unseeded prompt
    still renders the same way twice; ``index`` tells apart the images of one request.
    """
    if width < 1 or height < 1:
        raise ValueError(f"cannot render a {width}x{height} image")
    rng = random.Random(_digest(prompt, negative_prompt, seed, width, height, index))
    palette = _palette(prompt, negative_prompt, rng)

    scale = min(1.0, _CANVAS_MAX / max(width, height))
    cw, ch = max(1, round(width * scale)), max(1, round(height * scale))
    canvas = _gradient(cw, ch, palette, rng)
    _draw_shapes(canvas, palette, rng)
    image = (
        canvas
        if (cw, ch) == (width, height)
        else canvas.resize((width, height), Image.Resampling.BICUBIC)
    )
    _draw_label(image, prompt)
    return _encode(image)


def _digest(
    prompt: str, negative_prompt: str, seed: int | None, width: int, height: int, index: int
) -> bytes:
    h = hashlib.sha256(b"genstudio-preview-v1\0")
    # Length-prefixed fields: ("a", "b\0c") and ("a\0b", "c") must not collide.
    for text in (prompt, negative_prompt, "auto" if seed is None else str(seed)):
        raw = text.encode("utf-8", "surrogatepass")
        h.update(struct.pack(">Q", len(raw)) + raw)
    h.update(struct.pack(">QQQ", width, height, index))
    return h.digest()


def _word_colour(word: str, saturation: float, value: float) -> Rgb:
    hue = int.from_bytes(hashlib.sha256(word.encode("utf-8", "surrogatepass")).digest()[:4]) / 2**32
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def _palette(prompt: str, negative_prompt: str, rng: random.Random) -> list[Rgb]:
    """Colours from the prompt's words (the same word, the same hue), jittered by the rng."""
    words = [w.lower() for w in _WORD.findall(prompt)] or ["untitled"]
    # A negative prompt mutes the picture a little, as it would steer a real model.
    saturation = 0.45 if negative_prompt.strip() else 0.7
    colours = []
    for word in words[:12]:
        r, g, b = _word_colour(word, saturation + rng.uniform(-0.15, 0.25), rng.uniform(0.55, 1.0))
        colours.append((r, g, b))
    while len(colours) < 4:
        colours.append(
            _word_colour(f"{words[0]}#{len(colours)}", saturation, rng.uniform(0.35, 0.95))
        )
    return colours


def _gradient(width: int, height: int, palette: list[Rgb], rng: random.Random) -> Image.Image:
    # A 256x256 gradient rotated about its centre, then scaled to the canvas: no
    # per-pixel Python, and the angle varies with the rng.
    ramp = Image.linear_gradient("L").rotate(
        rng.uniform(0, 360), resample=Image.Resampling.BILINEAR, expand=False, fillcolor=128
    )
    ramp = ramp.crop((48, 48, 208, 208)).resize((width, height), Image.Resampling.BILINEAR)
    dark, mid, light = rng.sample(palette, 3)
    dark = (dark[0] // 3, dark[1] // 3, dark[2] // 3)
    return ImageOps.colorize(ramp, black=dark, white=light, mid=mid).convert("RGB")


def _draw_shapes(canvas: Image.Image, palette: list[Rgb], rng: random.Random) -> None:
    draw = ImageDraw.Draw(canvas, "RGBA")
    w, h = canvas.size
    side = min(w, h)
    for _ in range(rng.randint(14, 32)):
        r, g, b = rng.choice(palette)
        fill = (r, g, b, rng.randint(60, 200))
        cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
        size = rng.uniform(0.05, 0.45) * side
        kind = rng.random()
        if kind < 0.4:
            rx, ry = size, size * rng.uniform(0.5, 1.5)
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
        elif kind < 0.65:
            rx, ry = size, size * rng.uniform(0.3, 1.2)
            draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
        elif kind < 0.9:
            draw.regular_polygon(
                (cx, cy, size), n_sides=rng.randint(3, 7), rotation=rng.uniform(0, 360), fill=fill
            )
        else:
            x2, y2 = rng.uniform(0, w), rng.uniform(0, h)
            draw.line((cx, cy, x2, y2), fill=fill, width=max(1, round(size / 12)))


def _excerpt(prompt: str) -> str:
    """The prompt's start in printable ASCII: the bitmap fallback font has nothing else."""
    text = " ".join(prompt.split())
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    if len(text) > EXCERPT_CHARS:
        text = text[: EXCERPT_CHARS - 3].rstrip() + "..."
    return text


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):  # Pillow built without FreeType
        return ImageFont.load_default()


def _draw_label(image: Image.Image, prompt: str) -> None:
    w, h = image.size
    size = max(8, min(w, h) // 40)
    font = _font(size)
    lines = [LABEL]
    excerpt = _excerpt(prompt)
    if excerpt:
        lines.append(excerpt)
    text = "\n".join(lines)
    pad = max(2, size // 2)
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = pad, h - box_h - pad
    draw.rectangle((x0, y0, x0 + box_w, y0 + box_h), fill=(0, 0, 0, 150))
    draw.multiline_text(
        (x0 + pad - left, y0 + pad - top), text, font=font, fill=(255, 255, 255, 235), spacing=2
    )


def _encode(image: Image.Image) -> bytes:
    # No pnginfo and no exif: Pillow writes no tIME chunk, so equal pixels give equal bytes.
    image.info.clear()
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=3)
    return out.getvalue()


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def render_edit(
    *,
    image_png: bytes,
    mask_png: bytes,
    prompt: str,
    negative_prompt: str = "",
    seed: int | None = None,
) -> bytes:
    """Inpainting, previewed: the prompt's pattern painted through the mask, nothing else.

    The mask is greyscale, 255 (or any value >= 128) where to repaint; it must be the
    image's size. Every pixel outside it keeps the input's exact value and the
    image its mode (RGB or RGBA).
    """
    image = _decode(image_png)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    mask = _decode(mask_png).convert("L")
    if mask.size != image.size:
        raise ValueError(f"the mask is {mask.size}, the image {image.size}")
    binary = mask.point(lambda v: 255 if v >= 128 else 0).convert("1")
    pattern = _decode(
        render_png(
            prompt=prompt,
            negative_prompt=negative_prompt,
            seed=seed,
            width=image.width,
            height=image.height,
        )
    ).convert(image.mode)
    result = image.copy()
    # a "1" mask pastes whole pixels or none: no blending at the edges
    result.paste(pattern, (0, 0), binary)
    return _encode(result)
