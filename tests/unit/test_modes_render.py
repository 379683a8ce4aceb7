"""The preview renderer's edit and video modes, and the upload inspector.

Edits must leave every pixel outside the mask exactly as it was; videos must be real
H.264 MP4s with exactly the asked frames, rate, duration and size (read back with
PyAV, FFmpeg's own demuxer and decoder).
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import cast

import av
import pillow_heif
import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from genstudio.adapters.gpu_local import render_edit, render_video
from genstudio.adapters.imaging import PillowImageInspector, sniff_image_type
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.media import mp4_info

pillow_heif.register_heif_opener()


def encode(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def photo(width: int = 160, height: int = 120, mode: str = "RGB") -> Image.Image:
    """A busy picture: a gradient with shapes, so a changed pixel cannot hide."""
    image = Image.linear_gradient("L").resize((width, height)).convert(mode)
    draw = ImageDraw.Draw(image)
    draw.ellipse((10, 10, width // 2, height // 2), fill=(200, 30, 60) if mode != "L" else 200)
    draw.rectangle(
        (width // 2, height // 3, width - 5, height - 5),
        fill=(20, 160, 90, 200)[: len(mode)] if mode != "L" else 90,
    )
    return image


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# -- edit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_an_edit_changes_the_masked_pixels_and_not_one_other(mode: str) -> None:
    original = photo(mode=mode)
    mask = box_mask(160, 120, (40, 30, 99, 79))

    result = decode(
        render_edit(
            image_png=encode(original), mask_png=encode(mask), prompt="a golden crown", seed=3
        )
    )

    assert result.size == original.size and result.mode == original.mode
    outside = Image.eval(mask, lambda v: 255 - v)
    # the result where the mask is not, the original where it is: all the original
    unmasked = Image.composite(result, original, outside)
    assert unmasked.tobytes() == original.tobytes()
    box = (40, 30, 100, 80)
    assert result.crop(box).tobytes() != original.crop(box).tobytes(), "the mask was repainted"


def test_an_edit_with_a_ragged_mask_keeps_every_unmasked_pixel() -> None:
    original = photo(200, 150)
    mask = Image.new("L", (200, 150), 0)
    draw = ImageDraw.Draw(mask)
    draw.line((0, 0, 199, 149), fill=255, width=9)
    draw.ellipse((120, 10, 190, 60), fill=200)  # grey still counts as painted
    draw.point([(5, 140), (6, 140)], fill=100)  # below half: not painted

    result = decode(render_edit(image_png=encode(original), mask_png=encode(mask), prompt="ink"))

    before, after, m = original.load(), result.load(), mask.load()
    assert before is not None and after is not None and m is not None
    for y in range(150):
        for x in range(200):
            if cast(int, m[x, y]) < 128:  # an "L" image: one int per pixel
                assert after[x, y] == before[x, y], (x, y)


def test_an_edit_is_deterministic_and_refuses_a_mask_of_another_size() -> None:
    image, mask = encode(photo()), encode(box_mask(160, 120, (0, 0, 20, 20)))
    assert render_edit(image_png=image, mask_png=mask, prompt="x", seed=1) == render_edit(
        image_png=image, mask_png=mask, prompt="x", seed=1
    )
    with pytest.raises(ValueError):
        render_edit(image_png=image, mask_png=encode(box_mask(80, 60, (0, 0, 9, 9))), prompt="x")


# -- video ----------------------------------------------------------------------------------


def read_video(data: bytes) -> tuple[av.video.stream.VideoStream, list[Image.Image], float]:
    container = av.open(io.BytesIO(data), "r")
    stream = container.streams.video[0]
    # PyAV's stub leaves VideoFrame.to_image unannotated
    frames = [f.to_image() for f in container.decode(stream)]  # type: ignore[no-untyped-call]
    assert stream.duration is not None and stream.time_base is not None
    duration = float(stream.duration * stream.time_base)
    codec = stream.codec_context.name
    assert codec == "h264"
    container.close()
    return stream, frames, duration


@pytest.mark.parametrize(
    ("resolution", "seconds", "fps"),
    [((854, 480), 2, 16), ((1280, 720), 1, 24), ((854, 480), 1, 8)],
)
def test_a_text_video_has_exactly_the_asked_frames_rate_duration_and_size(
    resolution: tuple[int, int], seconds: int, fps: int
) -> None:
    width, height = resolution
    mp4, poster = render_video(
        prompt="waves under the moon",
        seed=5,
        width=width,
        height=height,
        fps=fps,
        duration_seconds=seconds,
    )

    stream, frames, duration = read_video(mp4)
    assert len(frames) == seconds * fps == stream.frames
    assert stream.average_rate == fps
    assert duration == pytest.approx(seconds, abs=1e-6)
    assert {f.size for f in frames} == {(width, height)}
    assert frames[0].tobytes() != frames[-1].tobytes(), "the picture moves"
    info = mp4_info(mp4)
    assert info is not None
    assert (info.duration_seconds, info.width, info.height, info.frames) == (
        seconds,
        width,
        height,
        seconds * fps,
    )
    assert decode(poster).size == (width, height)


def mean_error(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


def test_an_image_video_starts_on_the_image() -> None:
    still = photo(854, 480)
    mp4, poster = render_video(
        prompt="slow zoom",
        width=854,
        height=480,
        fps=8,
        duration_seconds=2,
        image_png=encode(still),
    )
    _, frames, _ = read_video(mp4)
    assert len(frames) == 16
    assert mean_error(frames[0], still) < 4  # only H.264's loss
    assert mean_error(decode(poster), still) < 1
    assert mean_error(frames[-1], still) > mean_error(frames[0], still)


def test_a_keyframes_video_goes_from_the_first_frame_to_the_last() -> None:
    first = Image.new("RGB", (640, 360), (230, 40, 40))
    last = Image.new("RGB", (1280, 720), (30, 60, 220))  # other sizes are cover-fitted
    mp4, _ = render_video(
        prompt="",
        width=854,
        height=480,
        fps=10,
        duration_seconds=1,
        first_png=encode(first),
        last_png=encode(last),
    )
    _, frames, _ = read_video(mp4)
    assert len(frames) == 10
    red = [ImageStat.Stat(f).mean[0] for f in frames]
    assert mean_error(frames[0], first.resize((854, 480))) < 4
    assert mean_error(frames[-1], last.resize((854, 480))) < 4
    assert red == sorted(red, reverse=True), "a steady crossfade from red to blue"


def test_a_video_render_stops_when_its_progress_callback_raises() -> None:
    seen: list[int] = []

    def on_frame(done: int) -> None:
        seen.append(done)
        if done == 3:
            raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        render_video(prompt="x", width=64, height=64, fps=8, duration_seconds=2, on_frame=on_frame)
    assert seen == [1, 2, 3]


# -- the upload inspector -------------------------------------------------------------------

inspector = PillowImageInspector()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but has (almost) no pixel data: a decompression bomb's shape."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "content_type", "mode"),
    [
        ("PNG", "image/png", "RGB"),
        ("PNG", "image/png", "RGBA"),
        ("JPEG", "image/jpeg", "RGB"),
        ("WEBP", "image/webp", "RGB"),
        ("HEIF", "image/heic", "RGB"),
        ("JPEG", "application/octet-stream", "RGB"),
    ],
)
async def test_accepted_uploads_come_out_as_png_of_their_size(
    fmt: str, content_type: str, mode: str
) -> None:
    data = encode(photo(300, 200, mode), fmt)

    inspected = await inspector.inspect(data, content_type, field="image")

    assert (inspected.width, inspected.height) == (300, 200)
    assert inspected.source_type == sniff_image_type(data)
    picture = decode(inspected.data)
    assert picture.format == "PNG" and picture.size == (300, 200) and picture.mode == mode


async def test_exif_orientation_is_applied() -> None:
    image = photo(200, 100)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    inspected = await inspector.inspect(
        encode(image, "JPEG", exif=exif), "image/jpeg", field="image"
    )
    assert (inspected.width, inspected.height) == (100, 200)


@pytest.mark.parametrize(
    ("data", "content_type", "words"),
    [
        (b"", "image/png", "empty"),
        (b"GIF89a" + b"\x00" * 100, "image/gif", "not accepted"),
        (b"%PDF-1.4 not an image at all", None, "not a PNG, JPEG, WebP or HEIC"),
        (encode(photo(300, 200))[:200], "image/png", "does not decode"),
        (encode(photo(32, 32)), "image/png", "between 64 and 4096"),
        (encode(photo(5000, 64)), "image/png", "between 64 and 4096"),
        (png_header_only(60000, 60000), "image/png", "too many pixels"),
        (png_header_only(4000, 4000), "image/png", "does not decode"),
    ],
)
async def test_bad_uploads_are_refused_naming_the_field(
    data: bytes, content_type: str | None, words: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await inspector.inspect(data, content_type, field="firstFrame")
    assert caught.value.field == "firstFrame"
    assert words in caught.value.message


async def test_an_upload_over_the_byte_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import genstudio.adapters.imaging.inspector as module

    monkeypatch.setattr(module, "MAX_UPLOAD_BYTES", 1000)
    with pytest.raises(InvalidInput) as caught:
        await inspector.inspect(encode(photo(300, 200)), "image/png", field="image")
    assert caught.value.field == "image" and "larger than" in caught.value.message


async def test_a_binary_mask_is_normalised_to_0_and_255() -> None:
    mask = box_mask(100, 80, (10, 10, 29, 19))  # 20x10 painted
    mask.putpixel((50, 50), 127)  # below half: not painted
    inspected = await inspector.inspect_mask(
        encode(mask.convert("RGB")), "image/png", field="mask", size=(100, 80)
    )
    normalised = decode(inspected.data)
    assert normalised.mode == "L" and set(normalised.tobytes()) == {0, 255}
    assert inspected.painted == 200


async def test_an_alpha_mask_repaints_its_transparent_pixels() -> None:
    mask = Image.new("RGBA", (100, 80), (0, 0, 0, 255))
    ImageDraw.Draw(mask).rectangle((0, 0, 9, 9), fill=(0, 0, 0, 0))
    inspected = await inspector.inspect_mask(
        encode(mask), "image/png", field="mask", size=(100, 80)
    )
    assert inspected.painted == 100
    assert decode(inspected.data).getpixel((5, 5)) == 255


@pytest.mark.parametrize(
    ("mask", "words"),
    [
        (Image.new("L", (100, 80), 0), "no pixel"),
        (Image.new("RGBA", (100, 80), (255, 255, 255, 255)).resize((100, 81)), "image's size"),
    ],
)
async def test_an_empty_or_misfit_mask_is_refused(mask: Image.Image, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await inspector.inspect_mask(encode(mask), "image/png", field="mask", size=(100, 80))
    assert caught.value.field == "mask" and words in caught.value.message
