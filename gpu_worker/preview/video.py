"""A real H.264 MP4 from preview pictures, encoded with PyAV (FFmpeg in its wheel).

Text pans across the prompt's picture, an image zooms in slowly from itself,
keyframes crossfade from the first frame to the last.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from fractions import Fraction

import av
from PIL import Image, ImageOps

from gpu_worker.preview.render import decode, picture, png

Frame = Callable[[int], Image.Image]


def _cover(data: bytes, width: int, height: int) -> Image.Image:
    return ImageOps.fit(decode(data).convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def frames_of(
    *,
    prompt: str,
    negative_prompt: str,
    seed: int | None,
    width: int,
    height: int,
    frames: int,
    image: bytes | None = None,
    first: bytes | None = None,
    last: bytes | None = None,
) -> Frame:
    """The video's frame function: index -> an RGB picture of the size."""
    span = max(frames - 1, 1)
    if first is not None and last is not None:
        a, b = _cover(first, width, height), _cover(last, width, height)
        return lambda i: Image.blend(a, b, i / span)
    if image is not None:
        start = _cover(image, width, height)

        def zoom(i: int) -> Image.Image:
            f = 1.0 + 0.15 * i / span
            cw, ch = width / f, height / f
            box = ((width - cw) / 2, (height - ch) / 2, (width + cw) / 2, (height + ch) / 2)
            return start.resize((width, height), Image.Resampling.BILINEAR, box=box)

        return zoom
    big_w, big_h = round(width * 1.25), round(height * 1.25)
    scene = picture(prompt, negative_prompt, seed, big_w, big_h)

    def pan(i: int) -> Image.Image:
        x, y = round((big_w - width) * i / span), round((big_h - height) * i / span)
        return scene.crop((x, y, x + width, y + height))

    return pan


def encode_mp4(
    pictures: Iterator[Image.Image], *, width: int, height: int, fps: int
) -> tuple[bytes, bytes]:
    """(an H.264 MP4 of every picture at ``fps``, the first picture as PNG)."""
    out = io.BytesIO()
    poster: bytes | None = None
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "0", "threads": "1"}
        for index, image in enumerate(pictures):
            if poster is None:
                poster = png(image.copy())
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if poster is None:
        raise ValueError("a video needs at least one frame")
    return out.getvalue(), poster
