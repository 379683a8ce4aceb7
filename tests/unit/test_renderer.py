"""The preview renderer: real PNGs of the asked size, the same bytes for the same request."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from genstudio.adapters.gpu_local import render_png
from genstudio.core.model.media import PNG_SIGNATURE, png_dimensions


def render(
    prompt: str = "a red fox in the snow",
    *,
    negative_prompt: str = "",
    seed: int | None = 1,
    width: int = 128,
    height: int = 128,
    index: int = 0,
) -> bytes:
    return render_png(
        prompt=prompt,
        negative_prompt=negative_prompt,
        seed=seed,
        width=width,
        height=height,
        index=index,
    )


def test_the_same_request_renders_the_same_bytes() -> None:
    assert render() == render()
    assert render(seed=None) == render(seed=None)


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 2},
        {"seed": None},
        {"prompt": "a blue whale in the deep"},
        {"prompt": "a red fox in the snow."},
        {"negative_prompt": "blurry"},
        {"index": 1},
    ],
)
def test_any_change_to_the_request_renders_a_different_image(change: dict[str, object]) -> None:
    assert render(**change) != render()  # type: ignore[arg-type]


def test_an_unseeded_prompt_renders_the_same_way_each_time_and_differs_by_prompt() -> None:
    assert render("a cat", seed=None) == render("a cat", seed=None)
    assert render("a cat", seed=None) != render("a dog", seed=None)


@pytest.mark.parametrize(
    ("width", "height"), [(64, 64), (512, 512), (1024, 1024), (768, 512), (512, 1024), (64, 2048)]
)
def test_the_image_is_a_png_of_exactly_the_asked_size(width: int, height: int) -> None:
    data = render(width=width, height=height)

    assert data.startswith(PNG_SIGNATURE)
    assert png_dimensions(data) == (width, height)
    with Image.open(io.BytesIO(data)) as image:
        image.verify()


def test_the_image_is_visibly_varied_not_a_flat_colour() -> None:
    with Image.open(io.BytesIO(render(width=256, height=256))) as image:
        colours = image.convert("RGB").getcolors(maxcolors=256 * 256)
    assert colours is None or len(colours) > 50


def test_the_png_carries_no_metadata_that_changes_between_runs() -> None:
    data = render()
    assert b"tIME" not in data
    assert b"tEXt" not in data


@pytest.mark.parametrize(
    "prompt", ["", "   ", "日本語のプロンプト 🦊", "x" * 2000, "line\nbreak\ttab"]
)
def test_any_prompt_renders(prompt: str) -> None:
    assert png_dimensions(render(prompt)) == (128, 128)


def test_an_empty_size_is_refused() -> None:
    with pytest.raises(ValueError):
        render(width=0)


sides = st.integers(min_value=8, max_value=32).map(lambda n: n * 8)


@settings(max_examples=25, deadline=None)
@given(
    width=sides,
    height=sides,
    seed=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    prompt=st.text(max_size=60),
    index=st.integers(min_value=0, max_value=3),
)
def test_every_small_size_renders_exactly_and_repeatably(
    width: int, height: int, seed: int | None, prompt: str, index: int
) -> None:
    data = render(prompt, seed=seed, width=width, height=height, index=index)
    assert png_dimensions(data) == (width, height)
    assert render(prompt, seed=seed, width=width, height=height, index=index) == data
