"""The GPU engine: Hugging Face diffusers pipelines, loaded lazily, kept per model.

Needs the ``diffusers`` extra (torch, diffusers, transformers, accelerate, peft) and a
CUDA device; nothing here is imported until a job runs. The job's ``model`` is the
Hugging Face repo id to load (``GPU_WORKER_MODELS``, comma-separated, restricts which
ones; unset: any). Each pipeline is loaded once per process and kept; one job uses
the GPU at a time.

- image: ``AutoPipelineForText2Image`` (a ``lora`` input is loaded with
  ``load_lora_weights`` and applied at ``lora_scale``, then unloaded)
- edit: ``AutoPipelineForInpainting``; the answer keeps every pixel outside the mask
- video: ``DiffusionPipeline`` (e.g. Wan 2.1 T2V / I2V; keyframes need a pipeline that
  takes ``last_image``): the model makes the duration at its own frame rate, within its
  window (``frame_plan``), and the frames are resampled to exactly
  ``duration_seconds * fps``; a duration beyond the window is refused (BadInput)
- training: ``gpu_worker.diffusion_training`` (a Flux LoRA)

A job's negative prompt: Stable Diffusion and Wan use it through their classifier-free
guidance. Flux pipelines ignore it unless ``true_cfg_scale > 1`` (they are
guidance-distilled: one pass per step, no unconditional one), so a job with a
non-empty negative prompt runs them with ``true_cfg_scale`` (``TRUE_CFG_SCALE``,
``GPU_WORKER_TRUE_CFG_SCALE``): two transformer passes a step, about twice the time. A
job without one runs as before.

Refusals: a pipeline's safety checker flagging an output raises ContentPolicyError.
Not exercised by the test suite (no GPU there): see gpu_worker/README.md.
"""

from __future__ import annotations

import importlib
import inspect
import io
import os
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from gpu_worker.contract import (
    BadInput,
    ContentPolicyError,
    EditJob,
    ImageJob,
    TrainingJob,
    VideoJob,
)
from gpu_worker.engine import Context, Lora, Video
from gpu_worker.preview.render import decode, png
from gpu_worker.preview.video import encode_mp4

#: the catalog's base models (a training's ``base_model``) as Hugging Face repos
DEFAULT_BASE_MODELS = {
    "flux-schnell": "black-forest-labs/FLUX.1-schnell",
    "flux-dev": "black-forest-labs/FLUX.1-dev",
}
ALIGN = 16  # diffusion models want sides in multiples of 16: render so, then resize
#: Flux's true classifier-free guidance when a job has a negative prompt (diffusers'
#: ``true_cfg_scale``; its default 1.0 ignores the negative prompt; 1.0 here turns it
#: off). 4.0: a moderate scale, below Stable Diffusion's 7.5; not tuned on real weights
#: (GPU_WORKER_TRUE_CFG_SCALE sets it per deployment).
TRUE_CFG_SCALE = 4.0
#: Wan 2.1's own frame rate and its window: it is trained on 81-frame (5 s) clips at 16
#: fps, and makes 4k+1 frames (its VAE packs 4 frames in one latent after the first)
VIDEO_FPS = 16
VIDEO_MAX_FRAMES = 81


def _module(name: str) -> Any:
    return importlib.import_module(name)


def _aligned(side: int) -> int:
    return max(ALIGN, (side + ALIGN - 1) // ALIGN * ALIGN)


def _steps_for(model: str, configured: int | None) -> int:
    if configured:
        return configured
    return 4 if "schnell" in model.lower() or "turbo" in model.lower() else 28


@dataclass(frozen=True)
class FramePlan:
    """How a video job's frames come from a video model's."""

    #: frames the model makes (4k+1, within its window), at its own frame rate
    made: int
    #: for each of the job's ``duration_seconds * fps`` frames, the made frame it shows
    shown: tuple[int, ...]


def frame_plan(
    duration_seconds: int,
    fps: int,
    *,
    model_fps: int = VIDEO_FPS,
    max_frames: int = VIDEO_MAX_FRAMES,
) -> FramePlan:
    """The model makes ``duration_seconds`` at its own ``model_fps`` (the motion's pace
    is the model's: asking it for ``duration * fps`` frames at another rate plays its
    motion faster or slower), rounded up to 4k+1 frames; the job's ``duration * fps``
    frames are then picked from those, the first made frame first and the last last
    (a keyframes video ends on its last frame). The file has exactly the frames and
    duration the job asked for.

    A duration the window cannot hold at ``model_fps`` is refused (BadInput) rather
    than stretched (slow motion, sold as a longer video) or asked of the model past
    its window (Wan 2.1 beyond 81 frames repeats itself and degrades, and its memory
    and time grow with every frame: 30 s at 16 fps would be 481).
    """
    made = (duration_seconds * model_fps + 3) // 4 * 4 + 1
    longest = (max_frames - 1) // model_fps
    if made > max_frames:
        raise BadInput(
            f"this video model makes at most {longest} s ({max_frames} frames at its "
            f"{model_fps} fps), not {duration_seconds} s"
        )
    frames = duration_seconds * fps
    span = max(frames - 1, 1)
    # made frame nearest to i * (made - 1) / span, in integers (rounding halves up)
    shown = tuple((2 * i * (made - 1) + span) // (2 * span) for i in range(frames))
    return FramePlan(made=made, shown=shown)


def _parse_map(text: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


class DiffusersEngine:
    name = "diffusers"

    def __init__(
        self,
        *,
        device: str = "cuda",
        dtype: str = "bfloat16",
        models: frozenset[str] | None = None,
        base_models: Mapping[str, str] | None = None,
        steps: int | None = None,
        train_resolution: int = 512,
        true_cfg_scale: float = TRUE_CFG_SCALE,
        video_fps: int = VIDEO_FPS,
        video_max_frames: int = VIDEO_MAX_FRAMES,
    ) -> None:
        self.device = device
        self.dtype_name = dtype
        self.models = models
        self.base_models = dict(DEFAULT_BASE_MODELS | dict(base_models or {}))
        self.steps = steps
        self.train_resolution = train_resolution
        self.true_cfg_scale = true_cfg_scale
        self.video_fps = video_fps
        self.video_max_frames = video_max_frames
        self._pipelines: dict[tuple[str, str], Any] = {}
        self._gpu = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> DiffusersEngine:
        allowed = env.get("GPU_WORKER_MODELS")
        return cls(
            device=env.get("GPU_WORKER_DEVICE", "cuda"),
            dtype=env.get("GPU_WORKER_DTYPE", "bfloat16"),
            models=frozenset(m.strip() for m in allowed.split(",") if m.strip())
            if allowed
            else None,
            base_models=_parse_map(env.get("GPU_WORKER_BASE_MODELS", "")),
            steps=int(env["GPU_WORKER_STEPS"]) if env.get("GPU_WORKER_STEPS") else None,
            train_resolution=int(env.get("GPU_WORKER_TRAIN_RESOLUTION", "512")),
            true_cfg_scale=float(env.get("GPU_WORKER_TRUE_CFG_SCALE") or TRUE_CFG_SCALE),
            video_fps=int(env.get("GPU_WORKER_VIDEO_FPS") or VIDEO_FPS),
            video_max_frames=int(env.get("GPU_WORKER_VIDEO_MAX_FRAMES") or VIDEO_MAX_FRAMES),
        )

    # -- pipelines ------------------------------------------------------------------------

    @property
    def dtype(self) -> Any:
        return getattr(_module("torch"), self.dtype_name)

    def _check_model(self, model: str) -> None:
        if not model:
            raise BadInput("the job names no model")
        if self.models is not None and model not in self.models:
            raise BadInput(f"this worker does not serve {model!r} (GPU_WORKER_MODELS)")

    def pipeline(self, kind: str, model: str) -> Any:
        """The pipeline of ``kind`` ("image", "edit", "video") for ``model``, loaded once."""
        self._check_model(model)
        key = (kind, model)
        if key not in self._pipelines:
            diffusers = _module("diffusers")
            loader = {
                "image": diffusers.AutoPipelineForText2Image,
                "edit": diffusers.AutoPipelineForInpainting,
                "video": diffusers.DiffusionPipeline,
            }[kind]
            # ``dtype``: diffusers >= 0.40 (``torch_dtype`` is deprecated there)
            pipe = loader.from_pretrained(model, dtype=self.dtype)
            self._pipelines[key] = pipe.to(self.device)
        return self._pipelines[key]

    def _call(self, pipe: Any, ctx: Context, steps: int, **kwargs: Any) -> Any:
        """Call ``pipe`` with the arguments it takes, reporting each denoising step."""
        accepted = inspect.signature(pipe.__call__).parameters
        if "callback_on_step_end" in accepted:

            def on_step(pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> Any:
                # the steps it runs: fewer than asked when a strength < 1 skips the first ones
                total = getattr(pipe, "num_timesteps", None) or steps
                ctx.progress(step + 1, total)  # raises JobCancelled: the call stops
                return tensors

            kwargs["callback_on_step_end"] = on_step
        kwargs["num_inference_steps"] = steps
        return pipe(**{k: v for k, v in kwargs.items() if k in accepted and v is not None})

    def _negative(self, negative_prompt: str) -> dict[str, Any]:
        """The arguments that make a job's negative prompt count: the prompt, and for
        the pipelines that take it (Flux's) ``true_cfg_scale``; none when it is empty."""
        if not negative_prompt.strip():
            return {}
        return {"negative_prompt": negative_prompt, "true_cfg_scale": self.true_cfg_scale}

    def _generator(self, seed: int | None) -> Any:
        torch = _module("torch")
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()  # the worker picks one (docs/providers.md: a null seed)
        else:
            generator.manual_seed(seed)
        return generator

    @staticmethod
    def _refuse_flagged(result: Any) -> None:
        flagged = getattr(result, "nsfw_content_detected", None)
        if flagged and any(flagged):
            raise ContentPolicyError("the safety checker refused the output")

    # -- the engine -----------------------------------------------------------------------

    def image(self, job: ImageJob, ctx: Context) -> list[bytes]:
        loras = ctx.fetch(job.urls("lora"))
        with self._gpu:
            pipe = self.pipeline("image", job.model)
            steps = _steps_for(job.model, self.steps)
            with _lora(pipe, loras[0] if loras else None, job.lora_scale):
                result = self._call(
                    pipe,
                    ctx,
                    steps,
                    prompt=job.prompt,
                    width=_aligned(job.width),
                    height=_aligned(job.height),
                    num_images_per_prompt=job.num_outputs,
                    generator=self._generator(job.seed),
                    **self._negative(job.negative_prompt),
                )
        self._refuse_flagged(result)
        return [
            png(_exact(image, job.width, job.height)) for image in result.images[: job.num_outputs]
        ]

    def edit(self, job: EditJob, ctx: Context) -> bytes:
        image_png, mask_png = ctx.fetch(job.urls("image")[:1] + job.urls("mask")[:1])
        image = decode(image_png).convert("RGB")
        mask = decode(mask_png).convert("L").point(lambda v: 255 if v >= 128 else 0)
        if mask.size != image.size:
            raise BadInput("the mask is not the image's size")
        with self._gpu:
            pipe = self.pipeline("edit", job.model)
            w, h = _aligned(image.width), _aligned(image.height)
            result = self._call(
                pipe,
                ctx,
                _steps_for(job.model, self.steps),
                prompt=job.prompt,
                image=image.resize((w, h)),
                mask_image=mask.resize((w, h)),
                strength=job.strength,
                width=w,
                height=h,
                generator=self._generator(job.seed),
                **self._negative(job.negative_prompt),
            )
        self._refuse_flagged(result)
        painted = result.images[0].convert("RGB").resize(image.size, Image.Resampling.LANCZOS)
        kept = image.copy()
        kept.paste(
            painted, (0, 0), mask.convert("1")
        )  # every pixel outside the mask is the input's
        return png(_exact(kept, job.width, job.height))

    def video(self, job: VideoJob, ctx: Context) -> Video:
        # refused before anything is fetched or loaded when the window cannot hold it
        plan = frame_plan(
            job.duration_seconds,
            job.fps,
            model_fps=self.video_fps,
            max_frames=self.video_max_frames,
        )
        self._check_model(job.model)
        given = {
            name: ctx.fetch(job.urls(name)[:1]) for name in ("image", "first_frame", "last_frame")
        }
        w, h = _aligned(job.width), _aligned(job.height)
        first = given["image"] or given["first_frame"]
        with self._gpu:
            pipe = self.pipeline("video", job.model)
            accepted = inspect.signature(pipe.__call__).parameters
            embeds = _embedded_images(pipe)
            if job.input_type == "keyframes" and ("last_image" not in accepted or embeds == 1):
                raise BadInput(f"{job.model} cannot go from a first frame to a last frame")
            if job.input_type != "text" and "image" not in accepted:
                raise BadInput(f"{job.model} does not animate an image")
            if job.input_type == "image" and embeds == 2:
                raise BadInput(f"{job.model} needs a first and a last frame, not one image")
            result = self._call(
                pipe,
                ctx,
                self.steps or 30,
                prompt=job.prompt,
                image=decode(first[0]).convert("RGB").resize((w, h)) if first else None,
                last_image=decode(given["last_frame"][0]).convert("RGB").resize((w, h))
                if job.input_type == "keyframes"
                else None,
                width=w,
                height=h,
                num_frames=plan.made,
                output_type="pil",
                generator=self._generator(job.seed),
                **self._negative(job.negative_prompt),
            )
        frames = list(result.frames[0])
        if len(frames) != plan.made:
            raise RuntimeError(f"{job.model} made {len(frames)} frames, not {plan.made}")
        exact = {i: _exact(frames[i], job.width, job.height) for i in set(plan.shown)}
        picked = [exact[i] for i in plan.shown]
        mp4, poster = encode_mp4(iter(picked), width=job.width, height=job.height, fps=job.fps)
        return Video(mp4=mp4, poster=poster)

    def train(self, job: TrainingJob, ctx: Context) -> Lora:
        base = self.base_models.get(job.base_model, job.base_model)
        self._check_model(base)
        photos = ctx.fetch(job.urls("photo"))
        from gpu_worker.diffusion_training import train_flux_lora

        with self._gpu:
            pipe = self.pipeline("image", base)
            weights = train_flux_lora(
                pipe,
                photos,
                steps=job.steps,
                prompt=f"a photo of {job.trigger_word}",
                seed=job.seed,
                resolution=self.train_resolution,
                ctx=ctx,
            )
            with _lora(pipe, weights, 1.0):
                result = self._call(
                    pipe,
                    Context(download=ctx.download, cancelled=ctx.cancelled),
                    _steps_for(base, self.steps),
                    prompt=job.sample,
                    width=512,
                    height=512,
                    generator=self._generator(job.seed),
                )
        return Lora(weights=weights, samples=[png(image) for image in result.images[:1]])


class _lora:
    """Load LoRA weights into a pipeline for one call, and unload them after."""

    def __init__(self, pipe: Any, weights: bytes | None, scale: float) -> None:
        self.pipe, self.weights, self.scale = pipe, weights, scale
        self.folder: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> None:
        if self.weights is None:
            return
        self.folder = tempfile.TemporaryDirectory()
        path = Path(self.folder.name) / "lora.safetensors"
        path.write_bytes(self.weights)
        try:
            self.pipe.load_lora_weights(str(path), adapter_name="user")
            self.pipe.set_adapters(["user"], adapter_weights=[self.scale])
        except BaseException:
            self.__exit__()  # a LoRA that did not load leaves nothing behind
            raise

    def __exit__(self, *exc: object) -> None:
        if self.folder is not None:
            self.pipe.unload_lora_weights()
            self.folder.cleanup()


def _embedded_images(pipe: Any) -> int | None:
    """How many images the video transformer embeds, where its config says: Wan 2.1's
    I2V one, its FLF2V two (the first and the last frame, side by side). Both run in
    diffusers' ``WanImageToVideoPipeline``, which takes ``last_image`` either way and
    fails inside the transformer when the count is not the model's."""
    config = getattr(getattr(pipe, "transformer", None), "config", None)
    if not getattr(config, "image_dim", None):
        return None
    return 2 if getattr(config, "pos_embed_seq_len", None) else 1


def _exact(image: Any, width: int, height: int) -> Image.Image:
    """A pipeline's picture at exactly ``width`` x ``height`` RGB."""
    picture: Image.Image = (
        image if isinstance(image, Image.Image) else Image.open(io.BytesIO(image))
    )
    picture = picture.convert("RGB")
    if picture.size != (width, height):
        picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    return picture
