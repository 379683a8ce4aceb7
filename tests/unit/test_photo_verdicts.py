"""The verdict rules on measured numbers (genstudio.core.model.training.photos)."""

from __future__ import annotations

import msgspec
import pytest

from genstudio.core.model.training.photos import (
    FaceBox,
    PhotoMeasures,
    PhotoReason,
    PhotoThresholds,
    hamming,
    judge,
    unmeasured,
)

R = PhotoReason
T = PhotoThresholds()
GOOD = PhotoMeasures(
    width=3000,
    height=4000,
    sharpness=400.0,
    mean_luminance=120.0,
    dark_clipped=0.02,
    bright_clipped=0.01,
    faces=(FaceBox(1000, 1000, 900, 900),),
    phash="0000000000000000",
)


def with_(**changes: object) -> PhotoMeasures:
    return msgspec.structs.replace(GOOD, **changes)


def test_a_good_photo_is_accepted_with_a_high_score() -> None:
    verdict = judge(GOOD, T)
    assert verdict.accepted and verdict.reasons == ()
    assert verdict.score >= 80


@pytest.mark.parametrize(
    ("measures", "reasons"),
    [
        (with_(width=511, height=900), (R.TOO_SMALL,)),
        (with_(sharpness=T.min_sharpness - 0.1), (R.BLURRY,)),
        (with_(mean_luminance=T.min_mean_luminance - 1), (R.TOO_DARK,)),
        (with_(dark_clipped=T.max_dark_clipped + 0.01), (R.TOO_DARK,)),
        (with_(mean_luminance=T.max_mean_luminance + 1), (R.OVEREXPOSED,)),
        (with_(bright_clipped=T.max_bright_clipped + 0.01), (R.OVEREXPOSED,)),
        (with_(faces=()), (R.NO_FACE,)),
        (with_(faces=(FaceBox(0, 0, 900, 900), FaceBox(2000, 0, 450, 450))), (R.SEVERAL_FACES,)),
        (with_(faces=(FaceBox(0, 0, 299, 299),)), (R.FACE_TOO_SMALL,)),
    ],
)
def test_each_rule_names_its_reason(measures: PhotoMeasures, reasons: tuple[PhotoReason]) -> None:
    verdict = judge(measures, T)
    assert not verdict.accepted
    assert verdict.reasons == reasons


def test_a_small_face_in_the_background_is_not_a_second_person() -> None:
    background = with_(faces=(FaceBox(0, 0, 900, 900), FaceBox(2000, 0, 449, 449)))
    assert judge(background, T).accepted


def test_every_reason_that_applies_is_listed_in_order() -> None:
    bad = with_(width=400, height=400, sharpness=1.0, mean_luminance=10.0, faces=())
    assert judge(bad, T).reasons == (R.TOO_SMALL, R.BLURRY, R.TOO_DARK, R.NO_FACE)


def test_a_duplicate_is_within_the_configured_distance_of_an_accepted_photo() -> None:
    near = "000000000000003f"  # 6 bits away
    far = "000000000000007f"  # 7 bits away
    assert hamming(GOOD.phash, near) == 6
    assert judge(GOOD, T, [far]).accepted
    assert judge(GOOD, T, [far, near]).reasons == (R.DUPLICATE,)
    strict = PhotoThresholds(duplicate_distance=0)
    assert judge(GOOD, strict, [near]).accepted


def test_thresholds_are_configurable() -> None:
    lenient = PhotoThresholds(min_side=256, min_sharpness=0.5)
    assert judge(with_(width=300, height=300, sharpness=1.0), lenient).accepted


@pytest.mark.parametrize(
    "bad",
    [
        {"min_mean_luminance": 200.0, "max_mean_luminance": 100.0},
        {"max_dark_clipped": 1.5},
        {"second_face_ratio": 0.0},
        {"min_side": 0},
    ],
)
def test_nonsensical_thresholds_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PhotoThresholds(**bad)  # type: ignore[arg-type]


def test_the_score_ranks_a_sharper_photo_higher() -> None:
    assert judge(with_(sharpness=2000.0), T).score > judge(with_(sharpness=70.0), T).score
    assert 0 <= judge(with_(sharpness=0.0, faces=(), mean_luminance=0.0), T).score <= 100


def test_an_unreadable_photo_has_only_its_reason_and_no_score() -> None:
    verdict = unmeasured(R.UNREADABLE)
    assert (verdict.accepted, verdict.reasons, verdict.score) == (False, (R.UNREADABLE,), 0)
    with pytest.raises(ValueError):
        unmeasured(R.BLURRY)
