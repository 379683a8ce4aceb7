"""Byte ranges of the local media endpoint (entrypoints/http/controllers/media.py)."""

from __future__ import annotations

import pytest

from genstudio.entrypoints.http.media.controller import Unsatisfiable, byte_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-1", (0, 1)),  # AVPlayer's first probe
        ("bytes=0-", (0, 999)),
        ("bytes=500-", (500, 999)),
        ("bytes=990-2000", (990, 999)),  # clamped to the end
        ("bytes=-100", (900, 999)),  # the last 100 bytes
        ("bytes=-5000", (0, 999)),
        (" bytes=10-19 ", (10, 19)),
    ],
)
def test_a_single_range_is_served_clamped_to_the_file(
    header: str, expected: tuple[int, int]
) -> None:
    assert byte_range(header, 1000) == expected


@pytest.mark.parametrize(
    "header", [None, "", "bytes=-", "bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=a-b"]
)
def test_anything_else_gets_the_whole_file(header: str | None) -> None:
    assert byte_range(header, 1000) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_past_the_end_cannot_be_satisfied(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, 1000)
