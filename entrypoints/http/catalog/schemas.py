"""The model catalog's JSON, with credit prices."""

from __future__ import annotations

import msgspec

from genstudio.core.model.pricing import (
    ModelSpec,
    PerImagePrice,
    PerSecondPrice,
    PerStepPrice,
    PriceRule,
)


class SizeTierItem(msgspec.Struct, rename="camel"):
    max_megapixels: float
    credits: int


class PerImagePriceItem(msgspec.Struct, rename="camel", tag_field="type", tag="per_image"):
    """Credits per image: the first tier whose ``maxMegapixels`` holds the image."""

    tiers: list[SizeTierItem]


class PerSecondPriceItem(msgspec.Struct, rename="camel", tag_field="type", tag="per_second"):
    """Credits per second of video, by resolution (``480p``, ``720p``)."""

    per_second: dict[str, int]


class PerStepPriceItem(msgspec.Struct, rename="camel", tag_field="type", tag="per_step"):
    """Training: credits per hundred steps, for the step counts offered (``steps``)."""

    per_hundred_steps: int
    steps: list[int]


PriceItem = PerImagePriceItem | PerSecondPriceItem | PerStepPriceItem


def price_item(rule: PriceRule) -> PriceItem:
    """The wire form of a price rule: the API's own, camelCase, not the core's struct."""
    if isinstance(rule, PerImagePrice):
        return PerImagePriceItem([SizeTierItem(t.max_megapixels, t.credits) for t in rule.tiers])
    if isinstance(rule, PerSecondPrice):
        return PerSecondPriceItem(dict(rule.per_second))
    assert isinstance(rule, PerStepPrice)
    return PerStepPriceItem(rule.per_hundred_steps, list(rule.steps))


class ModelItem(msgspec.Struct, rename="camel", kw_only=True):
    id: str
    kind: str
    display_name: str
    description: str
    price: PriceItem
    max_width: int
    max_height: int
    max_count: int
    # a training model: the image models its LoRAs are for (empty for the others)
    bases: list[str] = msgspec.field(default_factory=list)

    @classmethod
    def of(cls, m: ModelSpec) -> ModelItem:
        return cls(
            id=m.id,
            kind=m.kind.value,
            display_name=m.display_name,
            description=m.description,
            price=price_item(m.price),
            max_width=m.max_width,
            max_height=m.max_height,
            max_count=m.max_count,
            bases=list(m.bases),
        )


class ModelList(msgspec.Struct):
    items: list[ModelItem]
