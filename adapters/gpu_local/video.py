"""A real H.264 MP4 from the preview renderer, encoded with PyAV (FFmpeg in its wheel).

Text-to-video pans and zooms across the prompt's preview picture; image-to-video
starts on the uploaded image (the first frame is the image, cover-fitted) and slowly
zooms in; keyframes crossfade from the first frame to the last. The file has exactly
``duration_seconds * fps`` frames at ``fps``, each shown for ``1/fps`` s.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from fractions import Fraction

import av
from PIL import Image, ImageOps

from genstudio.adapters.gpu_local.renderer import _decode, _encode, render_png

Progress = Callable[[int], None]


def _cover(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale and centre-crop to exactly ``width`` x ``height`` (no bars, no distortion)."""
    return ImageOps.fit(image.convert("RGB"), (width, height), Image.Resampling.LANCZOS)


def _zoom(image: Image.Image, factor: float) -> Image.Image:
    """``image`` enlarged by ``factor`` about its centre, cropped back to its size."""
    if factor <= 1.0:
        return image
    w, h = image.size
    cw, ch = w / factor, h / factor
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return image.resize((w, h), Image.Resampling.BILINEAR, box=box)


def video_frames(
    *,
    prompt: str,
    negative_prompt: str,
    seed: int | None,
    width: int,
    height: int,
    frames: int,
    image_png: bytes | None = None,
    first_png: bytes | None = None,
    last_png: bytes | None = None,
) -> Callable[[int], Image.Image]:
    """The frame function of the requested video: index -> RGB picture of the size."""
    span = max(frames - 1, 1)
    if first_png is not None and last_png is not None:
        first = _cover(_decode(first_png), width, height)
        last = _cover(_decode(last_png), width, height)
        return lambda i: Image.blend(first, last, i / span)
    if image_png is not None:
        start = _cover(_decode(image_png), width, height)
        return lambda i: _zoom(start, 1.0 + 0.15 * i / span)
    # text: a picture a quarter larger than the frame, panned across diagonally
    big_w, big_h = round(width * 1.25), round(height * 1.25)
    scene = _decode(
        render_png(
            prompt=prompt, negative_prompt=negative_prompt, seed=seed, width=big_w, height=big_h
        )
    ).convert("RGB")

    def pan(i: int) -> Image.Image:
        t = i / span
        x, y = round((big_w - width) * t), round((big_h - height) * t)
        return scene.crop((x, y, x + width, y + height))

    return pan


def render_video(
    *,
    prompt: str,
    negative_prompt: str = "",
    seed: int | None = None,
    width: int,
    height: int,
    fps: int,
    duration_seconds: int,
    image_png: bytes | None = None,
    first_png: bytes | None = None,
    last_png: bytes | None = None,
    on_frame: Progress | None = None,
) -> tuple[bytes, bytes]:
    """(an H.264 MP4, its poster frame as PNG). ``on_frame(n)`` after each n-th frame;
    an exception it raises stops the render."""
    if width % 2 or height % 2 or width < 2 or height < 2:
        raise ValueError(f"H.264 4:2:0 needs even sides, not {width}x{height}")
    frames = duration_seconds * fps
    if frames < 1:
        raise ValueError("a video has at least one frame")
    frame_at = video_frames(
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        width=width,
        height=height,
        frames=frames,
        image_png=image_png,
        first_png=first_png,
        last_png=last_png,
    )
    out = io.BytesIO()
    poster: bytes | None = None
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # deterministic, quick, and playable everywhere (no B-frames: pts == dts)
        stream.options = {"preset": "veryfast", "crf": "23", "bf": "0", "threads": "1"}
        for index in range(frames):
            picture = frame_at(index)
            if index == 0:
                poster = _encode(picture.copy())
            # PyAV's stub leaves VideoFrame.from_image unannotated
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            frame.pts = index
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
            if on_frame is not None:
                on_frame(index + 1)
        for packet in stream.encode(None):
            container.mux(packet)
    assert poster is not None
    return out.getvalue(), poster
