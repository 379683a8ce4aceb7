"""The photo analyser (genstudio.ports.vision.PhotoAnalyser) over real photographs, and the
verdict each one gets: every reason is shown on a real image, never a mocked detector.

The photos are scikit-image's astronaut (a real face) and cat, made bad one way at a
time (tests/contract/photos.py)."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageStat

from genstudio.adapters.vision.analyser import OpenCvPhotoAnalyser
from genstudio.core.model.training.photos import (
    PhotoReason,
    PhotoThresholds,
    Verdict,
    judge,
    unmeasured,
)
from genstudio.ports.vision import AnalysedPhoto
from tests.contract import photos as p

R = PhotoReason
THRESHOLDS = PhotoThresholds()


@pytest.fixture(scope="module")
def analyser() -> OpenCvPhotoAnalyser:
    return OpenCvPhotoAnalyser()


async def verdict_of(
    analyser: OpenCvPhotoAnalyser, data: bytes, accepted_hashes: tuple[str, ...] = ()
) -> tuple[Verdict, AnalysedPhoto]:
    analysed = await analyser.analyse(data)
    if analysed.problem is not None:
        return unmeasured(analysed.problem), analysed
    assert analysed.measures is not None
    return judge(analysed.measures, THRESHOLDS, accepted_hashes), analysed


async def test_a_clear_portrait_is_accepted(analyser: OpenCvPhotoAnalyser) -> None:
    verdict, analysed = await verdict_of(analyser, p.jpeg(p.astronaut()))
    assert verdict.accepted, verdict
    assert verdict.score >= 50
    assert analysed.measures is not None and len(analysed.measures.faces) == 1
    assert analysed.content_type == "image/jpeg" and analysed.data is not None
    assert Image.open(io.BytesIO(analysed.data)).size == (1024, 1024)


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: p.jpeg(p.cat()), {R.NO_FACE}),
        (lambda: p.jpeg(p.blurred(p.astronaut())), {R.BLURRY}),
        (lambda: p.jpeg(p.darkened(p.astronaut())), {R.TOO_DARK}),
        (lambda: p.jpeg(p.overexposed(p.astronaut())), {R.OVEREXPOSED}),
        (lambda: p.jpeg(p.shrunk(p.astronaut())), {R.TOO_SMALL}),
        (lambda: p.jpeg(p.two_faces(p.astronaut())), {R.SEVERAL_FACES}),
        (lambda: p.jpeg(p.small_face(p.astronaut(512))), {R.FACE_TOO_SMALL}),
    ],
    ids=["cat", "blurred", "dark", "overexposed", "small", "two-faces", "small-face"],
)
async def test_each_bad_photo_gets_its_reason(
    analyser: OpenCvPhotoAnalyser, make: object, expected: set[PhotoReason]
) -> None:
    assert callable(make)
    verdict, _ = await verdict_of(analyser, make())
    assert not verdict.accepted
    assert set(verdict.reasons) == expected


async def test_a_near_copy_of_an_accepted_photo_is_a_duplicate(
    analyser: OpenCvPhotoAnalyser,
) -> None:
    first, analysed = await verdict_of(analyser, p.jpeg(p.astronaut()))
    assert first.accepted and analysed.measures is not None
    # the same photo re-encoded smaller, as PNG: other bytes, the same picture
    copy = p.encoded(p.astronaut().resize((900, 900)), "PNG")
    again, _ = await verdict_of(analyser, copy, (analysed.measures.phash,))
    assert again.reasons == (R.DUPLICATE,)
    other, _ = await verdict_of(analyser, p.jpeg(p.cat()), (analysed.measures.phash,))
    assert R.DUPLICATE not in other.reasons


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", R.UNREADABLE),
        (b"definitely not a photo", R.UNREADABLE),
        (p.jpeg(p.astronaut(512))[:2000], R.UNREADABLE),  # truncated
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40, R.UNREADABLE),  # a JPEG header, then junk
        (p.encoded(p.astronaut(512), "GIF"), R.UNSUPPORTED_FORMAT),
        (p.encoded(p.astronaut(512), "BMP"), R.UNSUPPORTED_FORMAT),
    ],
    ids=["empty", "text", "truncated-jpeg", "corrupt-jpeg", "gif", "bmp"],
)
async def test_what_cannot_be_measured_says_why(
    analyser: OpenCvPhotoAnalyser, data: bytes, expected: PhotoReason
) -> None:
    analysed = await analyser.analyse(data)
    assert analysed.problem is expected
    assert analysed.data is None and analysed.measures is None


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "HEIF"])
async def test_png_webp_and_heic_are_read_like_jpeg(
    analyser: OpenCvPhotoAnalyser, fmt: str
) -> None:
    verdict, analysed = await verdict_of(analyser, p.encoded(p.astronaut(), fmt, quality=95))
    assert verdict.accepted, verdict
    assert analysed.source_type == ("image/heic" if fmt == "HEIF" else f"image/{fmt.lower()}")


async def test_the_stored_photo_is_upright_and_carries_no_metadata(
    analyser: OpenCvPhotoAnalyser,
) -> None:
    """A phone photo stored sideways with orientation 6 (rotate 90° clockwise to view)
    and GPS tags comes out upright, with no EXIF, GPS, ICC or comment left."""
    upright = p.astronaut().crop((0, 0, 1024, 768))  # landscape, so the turn shows
    sideways = upright.transpose(Image.Transpose.ROTATE_90)  # as the sensor wrote it
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (48.0, 51.0, 24.0), 3: "E", 4: (2.0, 21.0, 3.0)})
    data = p.jpeg(sideways, exif=exif.tobytes(), comment=b"secret")
    source = Image.open(io.BytesIO(data))
    assert source.getexif().get_ifd(0x8825)  # the upload does carry GPS
    assert source.size == (768, 1024)

    analysed = await analyser.analyse(data)
    assert analysed.data is not None and analysed.measures is not None
    stored = Image.open(io.BytesIO(analysed.data))
    assert stored.size == (1024, 768) == (analysed.width, analysed.height)
    assert (analysed.measures.width, analysed.measures.height) == (1024, 768)
    assert len(stored.getexif()) == 0
    assert not {"exif", "icc_profile", "comment", "xmp"} & set(stored.info)
    assert b"Exif" not in analysed.data and b"PhoneMaker" not in analysed.data
    assert b"secret" not in analysed.data
    # upright: the stored photo matches the upright original, not the sideways one
    turned_back_wrong = sideways.resize(stored.size)
    assert _mean_abs_diff(stored, upright) < 12 < _mean_abs_diff(stored, turned_back_wrong)


def _mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean) / 3


async def test_a_twelve_megapixel_photo_is_measured_at_its_full_size(
    analyser: OpenCvPhotoAnalyser,
) -> None:
    verdict, analysed = await verdict_of(analyser, p.jpeg(p.twelve_megapixels()))
    assert verdict.accepted, verdict
    assert analysed.measures is not None
    assert (analysed.measures.width, analysed.measures.height) == (4000, 3000)
    assert (analysed.width, analysed.height) == (1536, 1152)
    face = analysed.measures.faces[0]
    assert 1000 < face.x < 2500 and face.width > 400  # in the original's pixels
