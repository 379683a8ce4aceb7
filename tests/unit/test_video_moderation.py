"""A generated video is moderated by frames sampled over its length, not by its poster
alone (issue #19): the frame sampler (adapters/imaging/frames.py, PyAV) over real
MP4s encoded here, Moderation.check_video over it, and a video job whose poster passes
but whose frames are refused failing with nothing stored."""

from __future__ import annotations

import io
import uuid

import av
import pytest
from PIL import Image

from genstudio.adapters.imaging import PillowImageInspector
from genstudio.adapters.imaging.frames import PyAvFrameSampler
from genstudio.core.model.job_params import VideoInput
from genstudio.core.model.moderation import Classification, ContentRefused, Label, Reason, Surface
from genstudio.core.model.pricing import DEFAULT_CATALOG
from genstudio.core.services.generation.submit import submit_video
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.processing.processor import JobProcessor
from tests.unit.support import POLICY, Studio
from tests.unit.test_moderation_outputs import CREDITS, assert_refused_and_nothing_kept

GREEN, RED = (20, 160, 40), (230, 10, 10)


def mp4(colours: list[tuple[int, int, int]], fps: int = 8) -> bytes:
    """A real H.264 MP4, one flat-coloured frame per entry."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        for colour in colours:
            picture = Image.new("RGB", (64, 64), colour)
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


def colour_of(png: bytes) -> tuple[int, int, int]:
    with Image.open(io.BytesIO(png)) as image:
        r, g, b = image.convert("RGB").getpixel((32, 32))  # type: ignore[misc]
    return int(r), int(g), int(b)


def is_red(colour: tuple[int, int, int]) -> bool:
    r, g, b = colour
    return r > 180 and g < 80 and b < 80


class RedIsSexual:
    """A classifier on the port: a picture whose centre is red is sexual content."""

    name = "red"

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        colour = colour_of(data)
        self.seen.append(colour)
        return Classification((Label(Reason.SEXUAL, 0.99, self.name),) if is_red(colour) else ())


async def test_frames_are_spread_over_the_whole_video() -> None:
    video = mp4([GREEN] * 8 + [RED] * 8 + [GREEN] * 8)  # 3 s at 8 fps
    frames = await PyAvFrameSampler().sample(video, 3)
    assert [is_red(colour_of(f)) for f in frames] == [False, True, False]
    assert len(await PyAvFrameSampler().sample(video, 30)) <= 24  # never more than it has
    assert await PyAvFrameSampler().sample(b"not a video", 3) == []


async def test_a_video_red_only_in_its_middle_is_refused_with_one_strike() -> None:
    studio = Studio()
    judge = RedIsSexual()
    moderation = Moderation(studio.factory, studio.clock, [judge], frames=PyAvFrameSampler())
    user = uuid.uuid4()
    video = mp4([GREEN] * 8 + [RED] * 8 + [GREEN] * 8)
    for _ in range(2):  # the same job's output judged twice: one strike
        with pytest.raises(ContentRefused) as refused:
            await moderation.check_video(
                video, Surface.OUTPUT, user_id=user, field="output", reference="job:1"
            )
        assert refused.value.field == "output"
    assert (await moderation.standing(user)).points == 1
    clean = mp4([GREEN] * 24)
    await moderation.check_video(clean, Surface.OUTPUT, user_id=user, field="output")
    assert not any(is_red(c) for c in judge.seen[-3:])


class RedFrames:
    """A frame sampler on the port whose frames of any video are red (the memory GPU's
    MP4s carry boxes, not pictures: nothing could decode them)."""

    def __init__(self) -> None:
        self.calls = 0

    async def sample(self, video: bytes, count: int) -> list[bytes]:
        self.calls += 1
        out = io.BytesIO()
        Image.new("RGB", (64, 64), RED).save(out, format="PNG")
        return [out.getvalue()] * count


async def test_a_video_job_whose_frames_are_refused_fails_and_stores_nothing() -> None:
    """The poster (the memory GPU's: not red) passes; the frames do not."""
    studio = Studio()
    frames = RedFrames()
    moderation = Moderation(studio.factory, studio.clock, [RedIsSexual()], frames=frames)
    studio.processor = JobProcessor(
        studio.factory,
        studio.gpu,
        studio.storage,
        studio.clock,
        DEFAULT_CATALOG,
        policy=POLICY,
        moderation=moderation,
    )
    user = await studio.user_with(CREDITS)
    submitted = await submit_video(
        studio.factory,
        studio.queue,
        studio.clock,
        DEFAULT_CATALOG,
        studio.storage,
        PillowImageInspector(),
        user_id=user,
        email=None,
        model_id="wan-2.1",
        input_type=VideoInput.TEXT,
        prompt="waves at night",
        idempotency_key=None,
        request_hash="video-frames-1",
    )
    assert submitted.job_id is not None
    await studio.drive(submitted.job_id)
    assert frames.calls == 1
    await assert_refused_and_nothing_kept(studio, moderation, user, submitted.job_id)
