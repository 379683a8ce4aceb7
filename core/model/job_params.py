"""What a user asks a job to make: the parameters of each kind, validated."""

from __future__ import annotations

import enum
import re
import unicodedata
import uuid

import msgspec

from genstudio.core.model.errors import InvalidInput

MAX_PROMPT = 2000
MIN_SIDE, MAX_SIDE = 64, 2048


#: the frame size of each offered resolution (16:9, even sides for H.264's 4:2:0)
RESOLUTIONS: dict[str, tuple[int, int]] = {"480p": (854, 480), "720p": (1280, 720)}
MIN_SECONDS, MAX_SECONDS = 1, 10
MIN_FPS, MAX_FPS = 8, 30
#: how strongly a user's own model is applied (0: not at all; 1: as trained)
MIN_LORA_SCALE, MAX_LORA_SCALE = 0.0, 2.0
#: the content type LoRA weights are stored and sent as
SAFETENSORS = "application/octet-stream"


class JobInput(msgspec.Struct, frozen=True):
    """One upload a job reads, under the name its provider knows it by.

    A job's inputs are an ordered list: several may share a name (a training job's
    photos are all ``photo``), and their order is the order the user gave them.
    """

    name: str  # "image", "mask", "first_frame", "last_frame"
    storage_key: str  # the user's upload, in media storage
    content_type: str = "image/png"  # uploads are normalised to PNG before they are stored


class ImageParams(msgspec.Struct, frozen=True, kw_only=True, tag="image"):
    prompt: str  # what the model renders (the enhanced prompt when enhancement was asked)
    width: int = 1024
    height: int = 1024
    count: int = 1
    seed: int | None = None
    negative_prompt: str = ""
    original_prompt: str | None = None  # the user's words, when ``prompt`` was enhanced
    # the user's own trained model (issue #16): its id, and its weights' storage key
    # (resolved from the id, once the owner was checked), applied at ``lora_scale``
    lora_id: uuid.UUID | None = None
    lora_key: str | None = None
    lora_scale: float = 1.0

    def validate(self, *, max_count: int, max_width: int, max_height: int) -> None:
        check_text(self.prompt, self.negative_prompt)
        for name, value, limit in (
            ("width", self.width, max_width),
            ("height", self.height, max_height),
        ):
            if not MIN_SIDE <= value <= min(limit, MAX_SIDE):
                raise InvalidInput(
                    f"{name} must be between {MIN_SIDE} and {min(limit, MAX_SIDE)}", field=name
                )
            if value % 8:
                raise InvalidInput(f"{name} must be a multiple of 8", field=name)
        if not 1 <= self.count <= max_count:
            raise InvalidInput(f"count must be between 1 and {max_count}", field="count")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            raise InvalidInput("seed must be between 0 and 2^63-1", field="seed")
        if not MIN_LORA_SCALE <= self.lora_scale <= MAX_LORA_SCALE:
            raise InvalidInput(
                f"loraScale must be between {MIN_LORA_SCALE:g} and {MAX_LORA_SCALE:g}",
                field="lora_scale",
            )

    def inputs(self) -> tuple[JobInput, ...]:
        """The files the job reads, in order: none for text-to-image, the weights of
        the user's own model (``lora``) when one is applied."""
        if self.lora_key is None:
            return ()
        return (JobInput("lora", self.lora_key, SAFETENSORS),)


#: C0 control characters but tab, newline and carriage return, and DEL: nothing a person
#: types into a prompt, and NUL cannot be stored (PostgreSQL refuses it in text)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: what draws nothing: controls, format characters (zero-width space and joiners,
#: BOM, bidi marks), separators, combining marks on their own
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"})
#: letters and symbols that render blank (Hangul fillers, the braille blank, ...)
_BLANK = frozenset("\u115f\u1160\u3164\uffa0\u2800\u180e")


def visible(text: str) -> bool:
    """Whether ``text`` shows anything: a prompt of zero-width characters alone was
    accepted and charged for (issue #19)."""
    return any(
        ch not in _BLANK and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES for ch in text
    )


def check_text(prompt: str, negative_prompt: str) -> None:
    """The checks every prompt and negative prompt pass, whatever the model."""
    if not prompt.strip():
        raise InvalidInput("the prompt is empty", field="prompt")
    if not visible(prompt):
        raise InvalidInput("the prompt has no visible characters", field="prompt")
    for field, label, value in (
        ("prompt", "the prompt", prompt),
        ("negative_prompt", "the negative prompt", negative_prompt),
    ):
        if len(value) > MAX_PROMPT:
            raise InvalidInput(f"{label} is longer than {MAX_PROMPT} characters", field=field)
        if _CONTROL.search(value):
            raise InvalidInput(f"{label} contains a control character (such as NUL)", field=field)


def _check_seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed < 2**63:
        raise InvalidInput("seed must be between 0 and 2^63-1", field="seed")


def _check_key(key: str | None, field: str) -> None:
    if not key:
        raise InvalidInput(f"{field} is required", field=field)


class EditParams(msgspec.Struct, frozen=True, kw_only=True, tag="edit"):
    """Inpainting: repaint the masked area of an uploaded image.

    ``image_key`` and ``mask_key`` are storage keys of the user's uploads (the mask
    normalised to a greyscale PNG of the image's size, 255 where to repaint);
    ``width`` and ``height`` are the image's, and price the job.
    """

    prompt: str
    image_key: str
    mask_key: str
    width: int
    height: int
    negative_prompt: str = ""
    seed: int | None = None
    strength: float = 0.85

    def validate(self, *, max_width: int, max_height: int) -> None:
        check_text(self.prompt, self.negative_prompt)
        _check_key(self.image_key, "image")
        _check_key(self.mask_key, "mask")
        if not (MIN_SIDE <= self.width <= max_width and MIN_SIDE <= self.height <= max_height):
            raise InvalidInput(
                f"the image is {self.width}x{self.height}; this model edits images from "
                f"{MIN_SIDE}x{MIN_SIDE} to {max_width}x{max_height}",
                field="image",
            )
        if not 0.0 < self.strength <= 1.0:
            raise InvalidInput("strength must be greater than 0 and at most 1", field="strength")
        _check_seed(self.seed)

    def inputs(self) -> tuple[JobInput, ...]:
        return (JobInput("image", self.image_key), JobInput("mask", self.mask_key))


class VideoInput(enum.StrEnum):
    TEXT = "text"
    IMAGE = "image"  # animate one uploaded image
    KEYFRAMES = "keyframes"  # go from an uploaded first frame to an uploaded last frame


class VideoParams(msgspec.Struct, frozen=True, kw_only=True, tag="video"):
    """A video of exactly ``duration_seconds * fps`` frames at ``RESOLUTIONS[resolution]``.

    Text-to-video uses no upload; image-to-video starts from ``image_key``; keyframes
    go from ``first_frame_key`` to ``last_frame_key`` (storage keys of the user's uploads).
    """

    prompt: str
    input_type: VideoInput = VideoInput.TEXT
    negative_prompt: str = ""
    duration_seconds: int = 5
    resolution: str = "480p"
    fps: int = 16
    seed: int | None = None
    image_key: str | None = None
    first_frame_key: str | None = None
    last_frame_key: str | None = None

    @property
    def frames(self) -> int:
        return self.duration_seconds * self.fps

    @property
    def size(self) -> tuple[int, int]:
        return RESOLUTIONS[self.resolution]

    def validate(self, *, resolutions: frozenset[str] | None = None) -> None:
        check_text(self.prompt, self.negative_prompt)
        offered = RESOLUTIONS.keys() if resolutions is None else resolutions & RESOLUTIONS.keys()
        if self.resolution not in offered:
            raise InvalidInput(
                f"resolution must be one of {', '.join(sorted(offered))}", field="resolution"
            )
        if not MIN_SECONDS <= self.duration_seconds <= MAX_SECONDS:
            raise InvalidInput(
                f"duration_seconds must be between {MIN_SECONDS} and {MAX_SECONDS}",
                field="duration_seconds",
            )
        if not MIN_FPS <= self.fps <= MAX_FPS:
            raise InvalidInput(f"fps must be between {MIN_FPS} and {MAX_FPS}", field="fps")
        _check_seed(self.seed)
        wanted = {
            VideoInput.TEXT: (),
            VideoInput.IMAGE: ("image",),
            VideoInput.KEYFRAMES: ("first_frame", "last_frame"),
        }[self.input_type]
        given = {
            "image": self.image_key,
            "first_frame": self.first_frame_key,
            "last_frame": self.last_frame_key,
        }
        for name, key in given.items():
            if name in wanted:
                _check_key(key, name)
            elif key is not None:
                raise InvalidInput(f"a {self.input_type.value} video takes no {name}", field=name)

    def inputs(self) -> tuple[JobInput, ...]:
        keys = (
            ("image", self.image_key),
            ("first_frame", self.first_frame_key),
            ("last_frame", self.last_frame_key),
        )
        return tuple(JobInput(name, key) for name, key in keys if key is not None)


#: a trigger word: what a prompt says to bring in the trained person ("ohwx", "zk_anna")
_TRIGGER = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,31}")
MAX_MODEL_NAME = 100


class TrainingParams(msgspec.Struct, frozen=True, kw_only=True, tag="training"):
    """A personal LoRA trained from the accepted photos of one photo set (issue #16).

    ``photo_keys`` are the storage keys of the set's accepted photos when the job was
    submitted, in upload order: the job trains on exactly those, whatever the set
    becomes (the set cannot lose photos while the job runs). ``base_model`` is the
    catalog's image model the LoRA is made for; generating with it later uses that
    model. ``name`` names the model the job makes.
    """

    photo_set_id: uuid.UUID
    photo_keys: tuple[str, ...]
    steps: int
    trigger_word: str
    base_model: str
    name: str
    seed: int | None = None

    @property
    def prompt(self) -> str:
        """What the sample images show (they are recorded with it)."""
        return f"a photo of {self.trigger_word}"

    @property
    def negative_prompt(self) -> str:
        return ""

    def validate(
        self, *, allowed_steps: tuple[int, ...], base_models: tuple[str, ...], min_photos: int
    ) -> None:
        """Raises InvalidInput naming the field at fault (``photoSetId`` with the
        count of accepted photos when there are too few)."""
        if self.steps not in allowed_steps:
            offered = ", ".join(str(s) for s in allowed_steps)
            raise InvalidInput(f"steps must be one of {offered}", field="steps")
        if not _TRIGGER.fullmatch(self.trigger_word):
            raise InvalidInput(
                "the trigger word is 2-32 letters, digits, '_' or '-', starting with a letter",
                field="trigger_word",
            )
        if self.base_model not in base_models:
            raise InvalidInput(
                f"base_model must be one of {', '.join(base_models)}", field="base_model"
            )
        if not self.name.strip() or len(self.name) > MAX_MODEL_NAME or _CONTROL.search(self.name):
            raise InvalidInput(
                f"the name is 1-{MAX_MODEL_NAME} characters, not blank", field="name"
            )
        _check_seed(self.seed)
        if len(self.photo_keys) < min_photos:
            raise InvalidInput(
                f"the photo set has {len(self.photo_keys)} accepted photos; training needs "
                f"at least {min_photos}",
                field="photo_set_id",
            )

    def inputs(self) -> tuple[JobInput, ...]:
        """Every photo, named ``photo``, in upload order."""
        return tuple(JobInput("photo", key, "image/jpeg") for key in self.photo_keys)


JobParams = ImageParams | EditParams | VideoParams | TrainingParams
