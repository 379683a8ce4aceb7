"""The worker contract of docs/providers.md §1: one job's input, parsed and checked.

Fields the contract does not name are ignored (either side may add fields); a field
it names with a wrong type or out of range is ``BadInput``, and so is a kind this
worker does not know. What the worker answers is built by ``gpu_worker.outputs``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_PROMPT = 2000
Side = Annotated[int, msgspec.Meta(ge=64, le=2048)]
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Prompt = Annotated[str, msgspec.Meta(max_length=MAX_PROMPT)]


class BadInput(ValueError):
    """The job's input breaks the contract: refused before anything runs."""


class ContentPolicyError(Exception):
    """The engine refuses the content (a safety checker, a policy): the job fails for
    good and is never retried. The message is shown to the user: no prompt, no secret."""


class JobCancelled(Exception):
    """The job was cancelled (or ran out of time) while it ran."""


class InputFile(msgspec.Struct, frozen=True):
    """One upload the job reads: a signed URL to GET without credentials."""

    name: str
    url: str
    content_type: str = "application/octet-stream"


class _Job(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    model: str = ""
    job_id: str = ""
    seed: Seed | None = None
    inputs: tuple[InputFile, ...] = ()

    def urls(self, name: str) -> list[str]:
        """Every URL of the inputs named ``name``, in order; the ``<name>_url`` field of
        workers written before the list when there is none."""
        listed = [i.url for i in self.inputs if i.name == name]
        if listed:
            return listed
        legacy = getattr(self, f"{name}_url", None)
        return [legacy] if isinstance(legacy, str) and legacy else []


class ImageJob(_Job, frozen=True, kw_only=True, tag="image"):
    prompt: Prompt
    negative_prompt: Prompt = ""
    width: Side = 1024
    height: Side = 1024
    num_outputs: Annotated[int, msgspec.Meta(ge=1, le=4)] = 1
    #: with one input named ``lora``: the user's own model, applied at this scale
    lora_scale: Annotated[float, msgspec.Meta(ge=0.0, le=2.0)] = 1.0


class EditJob(_Job, frozen=True, kw_only=True, tag="edit"):
    """Inpainting: repaint where the mask is >= 128, keep every other pixel."""

    prompt: Prompt
    negative_prompt: Prompt = ""
    width: Side
    height: Side
    strength: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.85
    image_url: str | None = None
    mask_url: str | None = None


class VideoJob(_Job, frozen=True, kw_only=True, tag="video"):
    """An H.264 MP4 of ``duration_seconds * fps`` frames and its poster frame."""

    prompt: Prompt
    negative_prompt: Prompt = ""
    input_type: Literal["text", "image", "keyframes"] = "text"
    width: Side
    height: Side
    fps: Annotated[int, msgspec.Meta(ge=1, le=60)] = 16
    duration_seconds: Annotated[int, msgspec.Meta(ge=1, le=30)] = 5
    image_url: str | None = None
    first_frame_url: str | None = None
    last_frame_url: str | None = None

    @property
    def frames(self) -> int:
        return self.fps * self.duration_seconds


class TrainingJob(_Job, frozen=True, kw_only=True, tag="training"):
    """A personal LoRA from 10-30 ``photo`` inputs."""

    steps: Annotated[int, msgspec.Meta(ge=1, le=20_000)]
    trigger_word: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    base_model: str = ""
    sample_prompt: Prompt = ""

    @property
    def sample(self) -> str:
        return self.sample_prompt or f"a photo of {self.trigger_word}"


Job = ImageJob | EditJob | VideoJob | TrainingJob
KINDS = ("image", "edit", "video", "training")


def parse_job(raw: Any) -> Job:
    """The job in ``raw`` (a decoded JSON object), checked; raises BadInput saying why."""
    if not isinstance(raw, dict):
        raise BadInput("the job input is not a JSON object")
    kind = raw.get("kind", "image")  # workers have read image jobs without a kind
    if kind not in KINDS:
        raise BadInput(f"this worker does not make {kind!r} jobs (it makes {', '.join(KINDS)})")
    try:
        job: Job = msgspec.convert({**raw, "kind": kind}, type=Job, strict=False)
    except msgspec.ValidationError as exc:
        raise BadInput(f"the job input is invalid: {exc}") from None
    _check(job)
    return job


def _check(job: Job) -> None:
    """What the types cannot say."""
    if isinstance(job, ImageJob | EditJob | VideoJob) and not job.prompt.strip():
        raise BadInput("the prompt is empty")
    if isinstance(job, EditJob):
        for name in ("image", "mask"):
            if not job.urls(name):
                raise BadInput(f"an edit job needs its {name} (an input named {name!r})")
    if isinstance(job, VideoJob):
        if job.width % 2 or job.height % 2:
            raise BadInput(f"H.264 needs even sides, not {job.width}x{job.height}")
        needs = {"text": (), "image": ("image",), "keyframes": ("first_frame", "last_frame")}
        for name in needs[job.input_type]:
            if not job.urls(name):
                raise BadInput(f"a {job.input_type} video needs an input named {name!r}")
    if isinstance(job, TrainingJob) and not job.urls("photo"):
        raise BadInput("a training needs its photos (inputs named 'photo')")
    if isinstance(job, ImageJob) and len(job.urls("lora")) > 1:
        raise BadInput("an image job applies at most one LoRA")
