"""Edit and video parameters, their prices, and reading MP4s without a decoder."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from genstudio.adapters.memory.gpu import tiny_mp4, tiny_png
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.job_params import (
    RESOLUTIONS,
    EditParams,
    ImageParams,
    JobParams,
    VideoInput,
    VideoParams,
)
from genstudio.core.model.media import mp4_info, poster_key, sniff_content_type, upload_key
from genstudio.core.model.pricing import DEFAULT_CATALOG


def edit(**changes: object) -> EditParams:
    base: dict[str, object] = {
        "prompt": "a hat",
        "image_key": "u/uploads/a.png",
        "mask_key": "u/uploads/b.png",
        "width": 512,
        "height": 512,
    }
    return EditParams(**(base | changes))  # type: ignore[arg-type]


def video(**changes: object) -> VideoParams:
    return VideoParams(**({"prompt": "waves at night"} | changes))  # type: ignore[arg-type]


def field_of(params: EditParams | VideoParams) -> str | None:
    with pytest.raises(InvalidInput) as caught:
        if isinstance(params, EditParams):
            params.validate(max_width=2048, max_height=2048)
        else:
            params.validate()
    return caught.value.field


def test_valid_edit_and_video_params_pass() -> None:
    edit().validate(max_width=2048, max_height=2048)
    video().validate()
    video(input_type=VideoInput.IMAGE, image_key="k").validate()
    video(input_type=VideoInput.KEYFRAMES, first_frame_key="a", last_frame_key="b").validate()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": " "}, "prompt"),
        ({"negative_prompt": "x" * 2001}, "negative_prompt"),
        ({"image_key": ""}, "image"),
        ({"mask_key": ""}, "mask"),
        ({"width": 32}, "image"),
        ({"height": 4096}, "image"),
        ({"strength": 0.0}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"seed": -1}, "seed"),
    ],
)
def test_invalid_edit_params_name_the_field(changes: dict[str, object], field: str) -> None:
    assert field_of(edit(**changes)) == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"prompt": ""}, "prompt"),
        ({"resolution": "1080p"}, "resolution"),
        ({"duration_seconds": 0}, "duration_seconds"),
        ({"duration_seconds": 11}, "duration_seconds"),
        ({"fps": 7}, "fps"),
        ({"fps": 31}, "fps"),
        ({"seed": 2**63}, "seed"),
        ({"input_type": VideoInput.IMAGE}, "image"),
        ({"input_type": VideoInput.KEYFRAMES, "first_frame_key": "a"}, "last_frame"),
        ({"input_type": VideoInput.KEYFRAMES, "last_frame_key": "b"}, "first_frame"),
        ({"image_key": "k"}, "image"),  # text-to-video takes no image
        ({"input_type": VideoInput.IMAGE, "image_key": "k", "last_frame_key": "b"}, "last_frame"),
    ],
)
def test_invalid_video_params_name_the_field(changes: dict[str, object], field: str) -> None:
    assert field_of(video(**changes)) == field


def test_a_video_has_duration_times_fps_frames_at_its_resolution() -> None:
    params = video(duration_seconds=3, fps=24, resolution="720p")
    assert params.frames == 72
    assert params.size == RESOLUTIONS["720p"] == (1280, 720)
    assert RESOLUTIONS["480p"] == (854, 480)


def test_only_the_catalogs_resolutions_are_offered() -> None:
    with pytest.raises(InvalidInput) as caught:
        video(resolution="720p").validate(resolutions=frozenset({"480p"}))
    assert caught.value.field == "resolution"


def test_params_round_trip_through_json_as_a_tagged_union() -> None:
    for params in (
        ImageParams(prompt="a"),
        edit(seed=3, strength=0.5),
        video(input_type=VideoInput.KEYFRAMES, first_frame_key="a", last_frame_key="b"),
    ):
        raw = msgspec.json.encode(params)
        assert msgspec.json.decode(raw, type=JobParams) == params
        assert msgspec.convert(msgspec.to_builtins(params), JobParams) == params


def named(params: JobParams) -> list[tuple[str, str]]:
    return [(i.name, i.storage_key) for i in params.inputs()]


def test_inputs_name_the_uploads_a_job_reads_in_order() -> None:
    assert named(ImageParams(prompt="a")) == []
    assert named(edit()) == [("image", "u/uploads/a.png"), ("mask", "u/uploads/b.png")]
    assert named(video()) == []
    assert named(video(input_type=VideoInput.IMAGE, image_key="k")) == [("image", "k")]
    keyframes = video(input_type=VideoInput.KEYFRAMES, first_frame_key="a", last_frame_key="b")
    assert named(keyframes) == [("first_frame", "a"), ("last_frame", "b")]
    assert {i.content_type for i in keyframes.inputs()} == {"image/png"}


# -- prices -------------------------------------------------------------------------------


def test_an_edit_is_priced_per_image_by_the_input_size() -> None:
    assert DEFAULT_CATALOG.edit_price("sdxl-inpaint", 512, 512) == 1
    assert DEFAULT_CATALOG.edit_price("sdxl-inpaint", 1024, 1024) == 2
    assert DEFAULT_CATALOG.edit_price("sdxl-inpaint", 2048, 2048) == 4
    with pytest.raises(InvalidInput) as too_big:
        DEFAULT_CATALOG.edit_price("sdxl-inpaint", 4096, 4096)
    assert too_big.value.field == "image"


def test_a_video_is_priced_per_second_by_resolution() -> None:
    assert DEFAULT_CATALOG.video_price("wan-2.1", 5, "480p") == 25
    assert DEFAULT_CATALOG.video_price("wan-2.1", 5, "720p") == 50
    assert DEFAULT_CATALOG.video_price("wan-2.1", 1, "480p") == 5
    assert DEFAULT_CATALOG.video_resolutions("wan-2.1") == frozenset({"480p", "720p"})


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: DEFAULT_CATALOG.edit_price("flux-schnell", 512, 512), "model"),
        (lambda: DEFAULT_CATALOG.video_price("sdxl-inpaint", 5, "480p"), "model"),
        (lambda: DEFAULT_CATALOG.video_price("wan-2.1", 5, "4k"), "resolution"),
    ],
)
def test_a_model_of_another_kind_or_an_unknown_resolution_is_refused(
    call: object, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.field == field


# -- media helpers ------------------------------------------------------------------------


def test_mp4_info_reads_duration_size_and_frames_from_the_boxes() -> None:
    info = mp4_info(tiny_mp4(854, 480, frames=80, fps=16))
    assert info is not None
    assert (info.duration_seconds, info.width, info.height, info.frames) == (5.0, 854, 480, 80)


@pytest.mark.parametrize(
    "data",
    [b"", b"not a video at all", tiny_png(8, 8), tiny_mp4(64, 64, 8, 8)[:-5], b"\x00" * 64],
)
def test_mp4_info_is_none_for_anything_else(data: bytes) -> None:
    assert mp4_info(data) is None


def test_sniffing_knows_png_and_mp4_only() -> None:
    assert sniff_content_type(tiny_png(4, 4)) == "image/png"
    assert sniff_content_type(tiny_mp4(4, 4, 1, 8)) == "video/mp4"
    assert sniff_content_type(b"\xff\xd8\xff\xe0 jpeg") is None


def test_uploads_and_posters_live_under_the_owner() -> None:
    user, media = uuid.uuid4(), uuid.uuid4()
    assert upload_key(user, media) == f"{user}/uploads/{media}.png"
    assert poster_key(f"{user}/{media}.mp4") == f"{user}/{media}.poster.png"
