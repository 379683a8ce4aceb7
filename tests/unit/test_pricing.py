"""The model catalog and its price rules."""

from __future__ import annotations

import math

import pytest

from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.pricing import (
    DEFAULT_CATALOG,
    Catalog,
    ModelKind,
    ModelSpec,
    PerImagePrice,
    PerSecondPrice,
    PerStepPrice,
    SizeTier,
)

TIERS = PerImagePrice((SizeTier(4.2, 4), SizeTier(0.27, 1), SizeTier(1.06, 2)))  # unsorted


def spec(model_id: str, kind: ModelKind, price: object) -> ModelSpec:
    return ModelSpec(
        id=model_id,
        kind=kind,
        display_name=model_id,
        provider_model=f"org/{model_id}",
        price=price,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("model_id", "kind"),
    [(m.id, m.kind) for m in DEFAULT_CATALOG.all()],
)
def test_every_catalog_model_is_found_under_its_own_kind(model_id: str, kind: ModelKind) -> None:
    assert DEFAULT_CATALOG.get(model_id, kind).id == model_id


@pytest.mark.parametrize("kind", list(ModelKind))
def test_a_model_looked_up_under_another_kind_is_refused_by_field_model(kind: ModelKind) -> None:
    # a model named in a request body is input, so a wrong one is InvalidInput (422)
    for model in DEFAULT_CATALOG.all():
        if model.kind is kind:
            continue
        with pytest.raises(InvalidInput) as info:
            DEFAULT_CATALOG.get(model.id, kind)
        assert info.value.field == "model"


def test_an_unknown_model_is_refused_by_field_model() -> None:
    with pytest.raises(InvalidInput) as info:
        DEFAULT_CATALOG.get("no-such-model", ModelKind.IMAGE)
    assert info.value.field == "model"
    with pytest.raises(InvalidInput):
        DEFAULT_CATALOG.image_price("no-such-model", 512, 512, 1)


def test_model_ids_are_unique_in_a_catalog() -> None:
    price = PerStepPrice(per_hundred_steps=1)
    with pytest.raises(ValueError):
        Catalog([spec("a", ModelKind.TRAINING, price), spec("a", ModelKind.IMAGE, TIERS)])


def test_the_default_catalog_offers_every_kind() -> None:
    assert {m.kind for m in DEFAULT_CATALOG.all()} == set(ModelKind)


@pytest.mark.parametrize(
    ("width", "height", "credits"),
    [
        (64, 64, 1),
        (512, 512, 1),  # 0.26 MP
        (520, 520, 2),  # 0.27 MP, just above the first tier
        (1024, 1024, 2),  # 1.05 MP
        (1024, 1040, 4),  # 1.06 MP, just above the second tier
        (2048, 2048, 4),  # 4.19 MP: the largest tier
    ],
)
def test_an_image_costs_the_smallest_tier_that_holds_it(
    width: int, height: int, credits: int
) -> None:
    assert TIERS.for_image(width, height) == credits


def test_a_tier_boundary_is_inclusive() -> None:
    exact = PerImagePrice((SizeTier(0.25, 1), SizeTier(1.0, 3)))
    assert exact.for_image(500, 500) == 1
    assert exact.for_image(1000, 1000) == 3


def test_an_image_larger_than_every_tier_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        TIERS.for_image(2056, 2056)
    assert info.value.field == "width"
    with pytest.raises(InvalidInput):
        DEFAULT_CATALOG.image_price("flux-schnell", 4096, 4096, 1)


@pytest.mark.parametrize("model_id", ["flux-schnell", "sdxl"])
@pytest.mark.parametrize("size", [(512, 512), (1024, 1024), (1536, 2048)])
@pytest.mark.parametrize("count", [1, 2, 4])
def test_an_image_request_costs_its_tier_times_its_count(
    model_id: str, size: tuple[int, int], count: int
) -> None:
    price = DEFAULT_CATALOG.get(model_id, ModelKind.IMAGE).price
    assert isinstance(price, PerImagePrice)
    one = price.for_image(*size)
    assert one > 0
    assert DEFAULT_CATALOG.image_price(model_id, *size, count) == one * count


def test_image_pricing_refuses_a_model_not_priced_per_image() -> None:
    catalog = Catalog([spec("odd", ModelKind.IMAGE, PerStepPrice(per_hundred_steps=5))])
    with pytest.raises(InvalidInput) as info:
        catalog.image_price("odd", 512, 512, 1)
    assert info.value.field == "model"


@pytest.mark.parametrize(
    ("seconds", "resolution", "credits"),
    [(5, "480p", 25), (5, "720p", 50), (4.5, "480p", 23), (0.1, "720p", 1)],
)
def test_a_video_costs_its_rate_per_started_credit(
    seconds: float, resolution: str, credits: int
) -> None:
    price = DEFAULT_CATALOG.get("wan-2.1", ModelKind.VIDEO).price
    assert isinstance(price, PerSecondPrice)
    assert price.for_video(seconds, resolution) == credits
    assert credits == math.ceil(seconds * price.per_second[resolution])


def test_a_video_resolution_not_offered_is_invalid_input() -> None:
    price = PerSecondPrice({"480p": 5})
    with pytest.raises(InvalidInput) as info:
        price.for_video(5, "1080p")
    assert info.value.field == "resolution"


@pytest.mark.parametrize(
    ("steps", "hundreds"), [(100, 1), (101, 2), (1000, 10), (1050, 11), (1, 1)]
)
def test_training_costs_its_rate_per_started_hundred_steps(steps: int, hundreds: int) -> None:
    price = DEFAULT_CATALOG.get("flux-lora", ModelKind.TRAINING).price
    assert isinstance(price, PerStepPrice)
    assert price.for_steps(steps) == hundreds * price.per_hundred_steps
