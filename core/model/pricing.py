"""The model catalog and its credit prices."""

from __future__ import annotations

import enum
import math

import msgspec

from genstudio.core.model.errors import InvalidInput


class ModelKind(enum.StrEnum):
    IMAGE = "image"
    EDIT = "edit"
    VIDEO = "video"
    TRAINING = "training"


class SizeTier(msgspec.Struct, frozen=True):
    max_megapixels: float
    credits: int


class PerImagePrice(msgspec.Struct, frozen=True, tag="per_image"):
    """Credits per image, by the smallest tier that holds the image's megapixels."""

    tiers: tuple[SizeTier, ...]

    def for_image(self, width: int, height: int) -> int:
        mp = width * height / 1_000_000
        for tier in sorted(self.tiers, key=lambda t: t.max_megapixels):
            if mp <= tier.max_megapixels + 1e-9:
                return tier.credits
        raise InvalidInput(f"{width}x{height} is larger than this model renders", field="width")


class PerSecondPrice(msgspec.Struct, frozen=True, tag="per_second"):
    """Credits per second of video at each resolution (the short side, in pixels)."""

    per_second: dict[str, int]

    def for_video(self, seconds: float, resolution: str) -> int:
        if resolution not in self.per_second:
            raise InvalidInput(f"resolution {resolution!r} is not offered", field="resolution")
        return math.ceil(seconds * self.per_second[resolution])


class PerStepPrice(msgspec.Struct, frozen=True, tag="per_step"):
    """Training: credits per hundred steps, for the step counts offered (``steps``)."""

    per_hundred_steps: int
    steps: tuple[int, ...] = (500, 1000, 1500, 2000)

    def for_steps(self, steps: int) -> int:
        return math.ceil(steps / 100) * self.per_hundred_steps


PriceRule = PerImagePrice | PerSecondPrice | PerStepPrice


class ModelSpec(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: ModelKind
    display_name: str
    provider_model: str
    price: PriceRule
    max_width: int = 2048
    max_height: int = 2048
    max_count: int = 4
    description: str = ""
    #: a training model: the image models the LoRAs it makes are for (issue #16)
    bases: tuple[str, ...] = ()


class Catalog:
    """An immutable set of models, looked up by id."""

    def __init__(self, models: list[ModelSpec]) -> None:
        self._models = {m.id: m for m in models}
        if len(self._models) != len(models):
            raise ValueError("model ids must be unique")

    def all(self) -> list[ModelSpec]:
        return list(self._models.values())

    def get(self, model_id: str, kind: ModelKind) -> ModelSpec:
        spec = self._models.get(model_id)
        if spec is None or spec.kind is not kind:
            raise InvalidInput(f"there is no {kind} model {model_id!r}", field="model")
        return spec

    def image_price(self, model_id: str, width: int, height: int, count: int) -> int:
        spec = self.get(model_id, ModelKind.IMAGE)
        if not isinstance(spec.price, PerImagePrice):
            raise InvalidInput(f"{model_id} is not priced per image", field="model")
        return spec.price.for_image(width, height) * count

    def edit_price(self, model_id: str, width: int, height: int) -> int:
        """One edited image, priced by the input image's size."""
        spec = self.get(model_id, ModelKind.EDIT)
        if not isinstance(spec.price, PerImagePrice):
            raise InvalidInput(f"{model_id} is not priced per image", field="model")
        try:
            return spec.price.for_image(width, height)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, field="image") from None

    def video_price(self, model_id: str, seconds: float, resolution: str) -> int:
        spec = self.get(model_id, ModelKind.VIDEO)
        if not isinstance(spec.price, PerSecondPrice):
            raise InvalidInput(f"{model_id} is not priced per second", field="model")
        return spec.price.for_video(seconds, resolution)

    def training_price(self, model_id: str, steps: int) -> int:
        """A training of ``steps`` steps (one of the offered counts, else InvalidInput
        naming ``steps``)."""
        rule = self.step_rule(model_id)
        if steps not in rule.steps:
            offered = ", ".join(str(s) for s in rule.steps)
            raise InvalidInput(f"steps must be one of {offered}", field="steps")
        return rule.for_steps(steps)

    def step_rule(self, model_id: str) -> PerStepPrice:
        spec = self.get(model_id, ModelKind.TRAINING)
        if not isinstance(spec.price, PerStepPrice):
            raise InvalidInput(f"{model_id} is not priced per step", field="model")
        return spec.price

    def video_resolutions(self, model_id: str) -> frozenset[str]:
        spec = self.get(model_id, ModelKind.VIDEO)
        if not isinstance(spec.price, PerSecondPrice):
            raise InvalidInput(f"{model_id} is not priced per second", field="model")
        return frozenset(spec.price.per_second)


_IMAGE_TIERS = (SizeTier(0.27, 1), SizeTier(1.06, 2), SizeTier(4.2, 4))

DEFAULT_CATALOG = Catalog(
    [
        ModelSpec(
            id="flux-schnell",
            kind=ModelKind.IMAGE,
            display_name="Flux Schnell",
            provider_model="black-forest-labs/FLUX.1-schnell",
            price=PerImagePrice(_IMAGE_TIERS),
            description="Fast text-to-image.",
        ),
        ModelSpec(
            id="sdxl",
            kind=ModelKind.IMAGE,
            display_name="Stable Diffusion XL",
            provider_model="stabilityai/stable-diffusion-xl-base-1.0",
            price=PerImagePrice((SizeTier(0.27, 2), SizeTier(1.06, 3), SizeTier(4.2, 6))),
            description="Detailed text-to-image.",
        ),
        ModelSpec(
            id="sdxl-inpaint",
            kind=ModelKind.EDIT,
            display_name="SDXL Inpainting",
            provider_model="diffusers/stable-diffusion-xl-1.0-inpainting-0.1",
            price=PerImagePrice(_IMAGE_TIERS),
            max_count=1,
            description="Repaints the masked area of an image.",
        ),
        ModelSpec(
            id="wan-2.1",
            kind=ModelKind.VIDEO,
            display_name="Wan 2.1",
            provider_model="Wan-AI/Wan2.1-T2V-14B",
            price=PerSecondPrice({"480p": 5, "720p": 10}),
            max_count=1,
            description="Text, image or keyframes to video.",
        ),
        ModelSpec(
            id="flux-lora",
            kind=ModelKind.TRAINING,
            display_name="Flux LoRA training",
            provider_model="ostris/flux-lora-trainer",
            price=PerStepPrice(per_hundred_steps=10),
            max_count=1,
            description="A personal LoRA from 10-30 photos.",
            bases=("flux-schnell",),
        ),
    ]
)
