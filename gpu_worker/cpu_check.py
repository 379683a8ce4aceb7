"""The diffusers engine run for real on the CPU, with tiny randomly-initialised models.

``python -m gpu_worker.cpu_check [--results FILE]`` (from the repository root, in a venv
with the ``diffusers`` extra: torch, diffusers, transformers, accelerate, peft). It
builds tiny pipelines from configs alone (nothing is downloaded: the tokenizers are made
from a few characters, every weight is random), saves them to a temporary folder, and
runs ``DiffusersEngine(device="cpu", dtype="float32")`` through ``Worker.run`` (the
calls the Modal function and the Runpod handler make) for each kind of job:

- image (Stable Diffusion and Flux): the asked size, determinism with a seed, progress
- edit (Stable Diffusion and Flux inpainting): every pixel outside the mask kept
- a negative prompt on Flux (image and inpainting): ignored at ``true_cfg_scale`` 1
  (what the engine passed before), another picture at the engine's true CFG scale
- loading: diffusers' ``dtype`` honoured, no ``torch_dtype`` deprecation warning
- training (a Flux LoRA): (step, total) reports, the weights' layout, a sample
- an image with a ``lora`` input (those weights): applied, then unloaded
- video (Wan 2.1 text-to-video, image-to-video, keyframes): ``duration * fps`` frames
  in an MP4 that decodes; Wan asked for the duration at its own 16 fps within its
  81-frame window, a longer duration refused before the model runs
- cancellation: a job stops at its next step and leaves the pipeline as it was

What it proves: the engine's code paths against the installed diffusers, end to end.
What it does not: real weights, CUDA, bfloat16, memory or speed (gpu_worker/README.md).
Not part of the test suite (torch and diffusers weigh gigabytes).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import importlib
import io
import json
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing comes from the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import av
import numpy as np
from PIL import Image

from gpu_worker.contract import BadInput, ContentPolicyError, JobCancelled
from gpu_worker.controls import Controls
from gpu_worker.diffusion import DiffusersEngine
from gpu_worker.worker import Worker, engine_from_env

STEPS = 2  # denoising steps of every job
TRAIN_STEPS = 3
TRAIN_RESOLUTION = 64
SEED = 1234


def _m(name: str) -> Any:
    return importlib.import_module(name)


# -- tiny components ---------------------------------------------------------------------


def _byte_chars() -> list[str]:
    """GPT-2's byte-to-unicode table (what CLIP's byte-level BPE reads)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _clip(torch: Any) -> tuple[Any, Any]:
    """A CLIP tokenizer (single characters, no merges) and a 32-wide text encoder."""
    transformers = _m("transformers")
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for char in _byte_chars():
        for token in (char, char + "</w>"):
            vocab.setdefault(token, len(vocab))
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    torch.manual_seed(0)
    config = transformers.CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        projection_dim=32,
    )
    return tokenizer, transformers.CLIPTextModel(config).eval()


def _t5(torch: Any) -> tuple[Any, Any]:
    """A T5 tokenizer (a unigram vocabulary of characters) and a 32-wide T5 encoder."""
    transformers = _m("transformers")
    specials = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    letters = [(c, -1.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    pieces = specials + [("▁", -1.0)] + letters + [("▁" + c, -1.5) for c, _ in letters]
    tokenizer = transformers.T5TokenizerFast(vocab=pieces, extra_ids=0, model_max_length=512)
    torch.manual_seed(0)
    config = transformers.T5Config(
        vocab_size=len(pieces),
        d_model=32,
        d_kv=8,
        d_ff=37,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return tokenizer, transformers.T5EncoderModel(config).eval()


def _vae(latent_channels: int, **extra: Any) -> Any:
    """An AutoencoderKL that downsamples 8x, as the real ones do (4 blocks)."""
    return _m("diffusers").AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        block_out_channels=[8, 8, 8, 8],
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=2,
        sample_size=64,
        **extra,
    )


def build_stable_diffusion(folder: Path) -> Path:
    torch, diffusers = _m("torch"), _m("diffusers")
    tokenizer, text_encoder = _clip(torch)
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=4,
    )
    pipe = diffusers.StableDiffusionPipeline(
        vae=_vae(4),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=diffusers.EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
        ),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def build_flagging_stable_diffusion(sd: Path, folder: Path) -> Path:
    """The Stable Diffusion pipeline with a safety checker that flags every picture."""
    torch, diffusers, transformers = _m("torch"), _m("diffusers"), _m("transformers")
    checker_module = _m("diffusers.pipelines.stable_diffusion.safety_checker")
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 4},
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        },
        projection_dim=32,
    )
    checker = checker_module.StableDiffusionSafetyChecker(config).eval()
    with torch.no_grad():  # every concept's score above its threshold
        checker.concept_embeds_weights.fill_(-2.0)
    pipe = diffusers.StableDiffusionPipeline.from_pretrained(
        sd,
        safety_checker=checker,
        feature_extractor=transformers.CLIPImageProcessor(size=32, crop_size=32),
        requires_safety_checker=True,
    )
    pipe.save_pretrained(folder)
    return folder


def build_flux(folder: Path, *, guidance: bool = True) -> Path:
    """FLUX.1-dev's layout (a guidance embedding), or schnell's (``guidance=False``)."""
    torch, diffusers = _m("torch"), _m("diffusers")
    tokenizer, text_encoder = _clip(torch)
    tokenizer_2, text_encoder_2 = _t5(torch)
    torch.manual_seed(0)
    transformer = diffusers.FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels in 2x2 patches
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=32,
        guidance_embeds=guidance,  # dev: the training passes a guidance; schnell: none
        axes_dims_rope=[4, 4, 8],
    )
    pipe = diffusers.FluxPipeline(
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(),
        vae=_vae(4, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


def build_wan(folder: Path) -> Path:
    torch, diffusers = _m("torch"), _m("diffusers")
    tokenizer, text_encoder = _t5(torch)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    pipe = diffusers.WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
    )
    pipe.save_pretrained(folder)
    return folder


def build_wan_i2v(folder: Path, *, keyframes: bool = False) -> Path:
    """Wan 2.1 image-to-video: I2V (one image), or FLF2V (``keyframes``: a first and a
    last frame, their embeddings side by side)."""
    torch, diffusers, transformers = _m("torch"), _m("diffusers"), _m("transformers")
    tokenizer, text_encoder = _t5(torch)
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    transformer = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=36,  # the noise, the image's latents and their mask
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
        image_dim=4,
        pos_embed_seq_len=2 * (4 * 4 + 1) if keyframes else None,
    )
    encoder = transformers.CLIPVisionModelWithProjection(
        transformers.CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=4,
            intermediate_size=16,
            patch_size=1,
        )
    ).eval()
    pipe = diffusers.WanImageToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(shift=3.0),
        image_encoder=encoder,
        image_processor=transformers.CLIPImageProcessor(size=4, crop_size=4),
    )
    pipe.save_pretrained(folder)
    return folder


# -- the harness -------------------------------------------------------------------------


class Failed(AssertionError):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)


@dataclass
class Harness:
    """The worker over the diffusers engine, its inputs served from memory."""

    engine: DiffusersEngine
    files: dict[str, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.worker = Worker(engine=self.engine, fetch=self.files.__getitem__, progress_interval=0)

    def put(self, name: str, data: bytes) -> dict[str, str]:
        url = f"memory://{name}"
        self.files[url] = data
        return {"name": name.split("-")[0], "url": url}

    def run(
        self, raw: dict[str, Any], cancel_at: int | None = None
    ) -> tuple[dict[str, Any], list[dict[str, int]]]:
        """The job's output and every progress report it sent (cancelled at the
        ``cancel_at``-th report when given)."""
        for pipe in self.engine._pipelines.values():
            pipe.set_progress_bar_config(disable=True)
        reports: list[dict[str, int]] = []
        cancelled = threading.Event()

        def report(value: dict[str, int]) -> None:
            reports.append(value)
            if cancel_at is not None and len(reports) >= cancel_at:
                cancelled.set()

        answer = self.worker.run(raw, report=report, cancelled=cancelled)
        return answer, reports


def data(answer: dict[str, str]) -> bytes:
    expect("base64" in answer, f"an output travelled by URL, not inline: {answer}")
    return base64.b64decode(answer["base64"])


def picture(png_bytes: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png_bytes))
    expect(image.format == "PNG", f"not a PNG: {image.format}")
    return image.convert("RGB")


def noise_png(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def expect_progress(reports: list[dict[str, int]], what: str) -> None:
    values = [r["progress"] for r in reports]
    expect(bool(values), f"{what}: no progress was reported")
    expect(values == sorted(set(values)), f"{what}: progress did not only rise: {values}")
    expect(values[-1] == 100, f"{what}: progress ended at {values[-1]}, not 100: {values}")


# -- the checks --------------------------------------------------------------------------


@dataclass
class Models:
    sd: str
    sd_flagging: str
    flux: str
    flux_schnell: str
    wan: str
    wan_i2v: str
    wan_flf2v: str
    lora: bytes = b""  # the weights the training made


def check_image(h: Harness, m: Models, model: str) -> dict[str, Any]:
    job = {
        "kind": "image",
        "model": model,
        "prompt": "a red fox in the snow",
        "negative_prompt": "blurry",
        "width": 72,  # not a multiple of 16: rendered at 80, answered at 72
        "height": 64,
        "num_outputs": 2,
        "seed": SEED,
    }
    out, reports = h.run(job)
    images = [data(a) for a in out["images"]]
    expect(len(images) == 2, f"{len(images)} images, not 2")
    for image in images:
        expect(picture(image).size == (72, 64), f"size {picture(image).size}, not 72x64")
    expect_progress(reports, "image")
    again, _ = h.run(job)
    expect([data(a) for a in again["images"]] == images, "the same seed made other images")
    other, _ = h.run({**job, "seed": SEED + 1})
    expect([data(a) for a in other["images"]] != images, "another seed made the same images")
    unseeded = [h.run({**job, "seed": None, "num_outputs": 1})[0] for _ in range(2)]
    a, b = (data(o["images"][0]) for o in unseeded)
    expect(picture(a).size == (72, 64), "an unseeded image is not 72x64")
    expect(a != b, "two unseeded jobs made the same image")
    return {"progress": [r["progress"] for r in reports]}


def edit_job(h: Harness, model: str) -> tuple[dict[str, Any], bytes, np.ndarray]:
    """An inpainting job of a 72x64 noise picture, its source PNG and its mask."""
    width, height = 72, 64
    source = noise_png(width, height, 1)
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[16:48, 20:60] = 200  # >= 128: repainted
    mask[0:8, 0:8] = 100  # < 128: kept
    mask_png = io.BytesIO()
    Image.fromarray(mask, mode="L").save(mask_png, format="PNG")
    job = {
        "kind": "edit",
        "model": model,
        "prompt": "a blue door",
        "width": width,
        "height": height,
        "strength": 0.85,
        "seed": SEED,
        "inputs": [h.put("image", source), h.put("mask", mask_png.getvalue())],
    }
    return job, source, mask


def check_edit(h: Harness, m: Models, model: str) -> dict[str, Any]:
    job, source, mask = edit_job(h, model)
    out, reports = h.run(job)
    painted = np.asarray(picture(data(out["images"][0])))
    original = np.asarray(picture(source))
    expect(painted.shape == original.shape, f"shape {painted.shape}, not {original.shape}")
    outside = mask < 128
    expect(bool((painted[outside] == original[outside]).all()), "a pixel outside the mask changed")
    changed = float((painted[~outside] != original[~outside]).any(axis=-1).mean())
    expect(changed > 0.5, f"only {changed:.0%} of the masked pixels were repainted")
    expect_progress(reports, "edit")
    return {
        "masked_pixels_changed": round(changed, 3),
        "progress": [r["progress"] for r in reports],
    }


def check_negative_prompt(h: Harness, m: Models, kind: str) -> dict[str, Any]:
    """Flux pipelines ignore a negative prompt unless ``true_cfg_scale > 1``. At 1.0
    (diffusers' default: what the engine passed before it set one) a negative prompt
    makes the same bytes as none; at the engine's scale, another picture from the same
    seed. A blank negative prompt is no negative prompt (no second pass)."""
    job: dict[str, Any]
    if kind == "image":
        job = {"kind": "image", "model": m.flux, "prompt": "a red fox in the snow"}
        job |= {"width": 64, "height": 64, "seed": SEED}
    else:
        job = edit_job(h, m.flux)[0]
    negative = "blurry, low quality"

    def render(negative_prompt: str) -> tuple[bytes, list[dict[str, int]]]:
        out, reports = h.run({**job, "negative_prompt": negative_prompt})
        return data(out["images"][0]), reports

    scale = h.engine.true_cfg_scale
    expect(scale > 1, f"the engine's true_cfg_scale is {scale}: a negative prompt does nothing")
    try:
        h.engine.true_cfg_scale = 1.0
        before_plain, before_negative = render("")[0], render(negative)[0]
    finally:
        h.engine.true_cfg_scale = scale
    expect(before_plain == before_negative, "at true_cfg_scale 1 the negative prompt counted")
    plain, _ = render("")
    with_negative, reports = render(negative)
    expect(plain == before_plain, "a job without a negative prompt made another picture")
    expect(with_negative != plain, f"the negative prompt changed nothing at {scale}")
    expect(render("   ")[0] == plain, "a blank negative prompt changed the picture")
    expect_progress(reports, f"{kind} with a negative prompt")
    a = np.asarray(picture(with_negative), dtype=int)
    b = np.asarray(picture(plain), dtype=int)
    return {
        "true_cfg_scale": scale,
        "at_scale_1_negative_equals_plain": True,
        "negative_differs_from_plain": True,
        "mean_abs_pixel_diff": round(float(np.abs(a - b).mean()), 2),
    }


def check_loading(h: Harness, m: Models) -> dict[str, Any]:
    """Pipelines load with diffusers' ``dtype`` argument: honoured (bfloat16 weights
    from float32 files here), and no ``torch_dtype`` deprecation warning."""
    torch = _m("torch")
    engine = DiffusersEngine(device="cpu", dtype="bfloat16")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = engine.pipeline("image", m.flux)
    dtypes = {
        name: str(component.dtype)
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
    }
    expect(set(dtypes.values()) == {str(torch.bfloat16)}, f"loaded as {dtypes}, not bfloat16")
    said = sorted({f"{w.category.__name__}: {str(w.message)[:120]}" for w in caught})
    deprecated = [w for w in said if "torch_dtype" in w]
    expect(not deprecated, f"loading warned: {deprecated}")
    return {"dtypes": dtypes, "warnings": said}


def check_refusal(h: Harness, m: Models) -> dict[str, Any]:
    job = {"kind": "image", "model": m.sd_flagging, "prompt": "a cat", "width": 64, "height": 64}
    try:
        h.run(job)
    except ContentPolicyError as exc:
        return {"error": str(exc)}
    raise Failed("a flagged image was answered")


def training_job(h: Harness, seed: int) -> dict[str, Any]:
    photos = [h.put(f"photo-{i}", noise_png(80, 96, 10 + i)) for i in range(3)]
    return {
        "kind": "training",
        "base_model": "flux-tiny",
        "steps": TRAIN_STEPS,
        "trigger_word": "sks",
        "seed": seed,
        "inputs": photos,
    }


def check_training(h: Harness, m: Models) -> dict[str, Any]:
    safetensors = _m("safetensors.torch")
    job = training_job(h, SEED)
    out, reports = h.run(job)
    expect(
        reports == [{"step": s, "total": TRAIN_STEPS} for s in range(1, TRAIN_STEPS + 1)],
        f"the training reported {reports}",
    )
    weights = data(out["weights"])
    layers = safetensors.load(weights)
    names = sorted(layers)
    expect(bool(names), "the weights hold no layer")
    expect(all(n.startswith("transformer.") for n in names), f"not a Flux LoRA: {names[:3]}")
    a = [n for n in names if ".lora_A." in n]
    b = [n for n in names if ".lora_B." in n]
    expect(len(a) == len(b) > 0, f"{len(a)} lora_A and {len(b)} lora_B layers")
    trained = sum(float(layers[n].abs().sum()) for n in b)
    expect(trained > 0, "every lora_B is zero: the adapters did not train")
    samples = out["samples"]
    expect(len(samples) == 1, f"{len(samples)} samples")
    expect(picture(data(samples[0])).size == (512, 512), "the sample is not 512x512")
    transformer = h.engine.pipeline("image", m.flux).transformer
    expect(not getattr(transformer, "peft_config", None), "the adapter was left on the model")
    m.lora = weights
    again = data(h.run(job)[0]["weights"])
    expect(again == weights, "the same seed trained other weights")
    return {"layers": len(names), "bytes": len(weights), "reports": len(reports)}


def check_training_bf16(h: Harness, m: Models) -> dict[str, Any]:
    """The deployed dtype: bfloat16 weights, float32 adapters, autocast (CPU's here)."""
    torch, safetensors = _m("torch"), _m("safetensors.torch")
    engine = DiffusersEngine(
        device="cpu",
        dtype="bfloat16",
        base_models=h.engine.base_models,
        steps=STEPS,
        train_resolution=TRAIN_RESOLUTION,
    )
    bf16 = Harness(engine, h.files)
    out, reports = bf16.run({**training_job(h, SEED), "base_model": "flux-schnell-tiny"})
    expect(len(reports) == TRAIN_STEPS, f"the training reported {reports}")
    layers = safetensors.load(data(out["weights"]))
    dtypes = {str(v.dtype) for v in layers.values()}
    expect(dtypes == {str(torch.bfloat16)}, f"weights saved as {dtypes}, not bfloat16")
    b = [v for k, v in layers.items() if ".lora_B." in k]
    expect(any(bool(v.abs().sum() > 0) for v in b), "every lora_B is zero")
    expect(picture(data(out["samples"][0])).size == (512, 512), "the sample is not 512x512")
    job = {"kind": "image", "model": m.flux_schnell, "prompt": "sks", "width": 64, "height": 64}
    image = bf16.run({**job, "inputs": [h.put("lora", data(out["weights"]))]})[0]
    expect(picture(data(image["images"][0])).size == (64, 64), "a bf16 LoRA image is not 64x64")
    return {"dtypes": sorted(dtypes)}


def check_training_cancel(h: Harness, m: Models) -> dict[str, Any]:
    image = {"kind": "image", "model": m.flux, "prompt": "a cat", "width": 64, "height": 64}
    image["seed"] = SEED
    base = data(h.run(image)[0]["images"][0])
    try:
        h.run(training_job(h, SEED + 1), cancel_at=1)
    except JobCancelled:
        pass
    else:
        raise Failed("a training cancelled at its first step ran to its end")
    transformer = h.engine.pipeline("image", m.flux).transformer
    left = list(getattr(transformer, "peft_config", None) or {})
    expect(not left, f"the cancelled training left its adapter on the model: {left}")
    expect(data(h.run(image)[0]["images"][0]) == base, "images changed after the cancel")
    out, reports = h.run(training_job(h, SEED + 1))
    expect(len(reports) == TRAIN_STEPS, f"the next training reported {reports}")
    expect(bool(data(out["weights"])), "the next training made no weights")
    return {}


def check_lora_image(h: Harness, m: Models) -> dict[str, Any]:
    safetensors = _m("safetensors.torch")
    job = {
        "kind": "image",
        "model": m.flux,
        "prompt": "a photo of sks",
        "width": 64,
        "height": 64,
        "seed": SEED,
    }
    base = data(h.run(job)[0]["images"][0])
    expect(bool(m.lora), "no trained weights (the training check failed)")
    # the trained weights as they are: loaded, applied, unloaded
    trained, reports = h.run({**job, "inputs": [h.put("lora", m.lora)], "lora_scale": 1.0})
    expect(picture(data(trained["images"][0])).size == (64, 64), "a LoRA image is not 64x64")
    expect_progress(reports, "image with a LoRA")
    # the same layers made strong (a few steps of training barely move a picture)
    layers = safetensors.load(m.lora)
    strong = {k: v * (400.0 if ".lora_B." in k else 1.0) for k, v in layers.items()}
    lora = h.put("lora-strong", safetensors.save(strong))
    with_lora = data(h.run({**job, "inputs": [lora], "lora_scale": 1.0})[0]["images"][0])
    expect(with_lora != base, "the LoRA changed nothing")
    scaled = data(h.run({**job, "inputs": [lora], "lora_scale": 0.0})[0]["images"][0])
    diff = np.abs(np.asarray(picture(scaled), dtype=int) - np.asarray(picture(base), dtype=int))
    expect(int(diff.max()) <= 1, f"lora_scale 0 changed the image (by up to {diff.max()})")
    after = data(h.run(job)[0]["images"][0])
    expect(after == base, "the LoRA was not unloaded: the next job's image differs")
    pipe = h.engine.pipeline("image", m.flux)
    expect(not pipe.get_list_adapters(), f"adapters left: {pipe.get_list_adapters()}")
    return {"scale_0_max_pixel_diff": int(diff.max())}


def check_bad_lora(h: Harness, m: Models) -> dict[str, Any]:
    safetensors, torch = _m("safetensors.torch"), _m("torch")
    job = {"kind": "image", "model": m.flux, "prompt": "a cat", "width": 64, "height": 64}
    job["seed"] = SEED
    base = data(h.run(job)[0]["images"][0])
    # a LoRA for another model: layers this transformer does not have
    wrong = {
        "transformer.nowhere.to_q.lora_A.weight": torch.zeros(4, 32),
        "transformer.nowhere.to_q.lora_B.weight": torch.zeros(32, 4),
    }
    outcomes = {}
    for name, weights in (("garbage", b"not a safetensors file"), ("wrong", wrong)):
        lora = h.put("lora", weights if isinstance(weights, bytes) else safetensors.save(weights))
        try:
            h.run({**job, "inputs": [lora]})
            outcomes[name] = "answered"
        except Exception as exc:
            outcomes[name] = f"{type(exc).__name__}: {str(exc)[:120]}"
        after = data(h.run(job)[0]["images"][0])
        expect(after == base, f"the {name} LoRA left the pipeline changed")
    return outcomes


def check_video(h: Harness, m: Models) -> dict[str, Any]:
    job = {
        "kind": "video",
        "model": m.wan,
        "prompt": "waves on a beach",
        "width": 72,
        "height": 64,
        "fps": 4,
        "duration_seconds": 2,
        "seed": SEED,
    }
    out, reports = h.run(job)
    mp4 = data(out["videos"][0])
    with av.open(io.BytesIO(mp4), mode="r") as container:
        stream = container.streams.video[0]
        codec, rate = stream.codec_context.name, stream.average_rate
    frames = decode_mp4(mp4)
    expect(len(frames) == 8, f"{len(frames)} frames, not duration * fps = 8")
    expect(all(f.size == (72, 64) for f in frames), f"frame size {frames[0].size}, not 72x64")
    expect(codec == "h264", f"codec {codec}, not h264")
    expect(rate == 4, f"{rate} frames a second, not 4")
    poster = picture(data(out["posters"][0]))
    expect(poster.size == (72, 64), f"poster {poster.size}, not 72x64")
    expect_progress(reports, "video")
    again = data(h.run(job)[0]["videos"][0])
    expect(again == mp4, "the same seed made another video")
    return {"frames": len(frames), "bytes": len(mp4), "progress": [r["progress"] for r in reports]}


def decode_mp4(mp4: bytes) -> list[Image.Image]:
    with av.open(io.BytesIO(mp4), mode="r") as container:
        return [
            Image.fromarray(f.to_ndarray(format="rgb24"))
            for f in container.decode(container.streams.video[0])
        ]


def check_video_from_images(h: Harness, m: Models) -> dict[str, Any]:
    job = {
        "kind": "video",
        "model": m.wan_i2v,
        "prompt": "the camera pans",
        "width": 64,
        "height": 80,
        "fps": 3,
        "duration_seconds": 2,
        "seed": SEED,
    }
    out: dict[str, Any] = {}
    image = [h.put("image", noise_png(50, 70, 0))]
    keyframes = [
        h.put(n, noise_png(50, 70, i)) for i, n in enumerate(["first_frame", "last_frame"])
    ]
    for input_type, model, inputs in (
        ("image", m.wan_i2v, image),
        ("keyframes", m.wan_flf2v, keyframes),
    ):
        answer, reports = h.run({**job, "model": model, "input_type": input_type, "inputs": inputs})
        frames = decode_mp4(data(answer["videos"][0]))
        expect(len(frames) == 6, f"{input_type}: {len(frames)} frames, not 6")
        expect(frames[0].size == (64, 80), f"{input_type}: frames of {frames[0].size}")
        expect_progress(reports, f"{input_type} video")
        out[input_type] = len(frames)
    # what a model cannot do is refused before it runs, saying why (not retried)
    refused = {
        "text_model_with_an_image": {"model": m.wan, "input_type": "image", "inputs": image},
        "i2v_model_with_keyframes": {
            "model": m.wan_i2v,
            "input_type": "keyframes",
            "inputs": keyframes,
        },
        "flf2v_model_with_one_image": {
            "model": m.wan_flf2v,
            "input_type": "image",
            "inputs": image,
        },
    }
    for name, fields in refused.items():
        try:
            h.run({**job, **fields})
        except BadInput as exc:
            out[name] = str(exc)
            continue
        except Exception as exc:
            raise Failed(f"{name}: {type(exc).__name__}, not BadInput: {exc}") from exc
        raise Failed(f"{name}: answered")
    return out


def check_video_frames(h: Harness, m: Models) -> dict[str, Any]:
    """Wan makes the duration at its own 16 fps within its 81-frame window, whatever
    the job's fps (the frames it is asked for are read off its transformer's input:
    4 frames a latent after the first); the MP4 has ``duration * fps`` frames at ``fps``
    and lasts ``duration``; a duration the window cannot hold (6 s, 30 s) is refused,
    saying why, before the model runs."""
    pipe = h.engine.pipeline("video", m.wan)
    asked: list[int] = []

    def seen(_module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        hidden: Any = kwargs.get("hidden_states", args[0] if args else None)
        asked.append((int(hidden.shape[2]) - 1) * 4 + 1)  # (batch, channels, T, h, w)

    handle = pipe.transformer.register_forward_pre_hook(seen, with_kwargs=True)
    job: dict[str, Any] = {"kind": "video", "model": m.wan, "prompt": "a kite"}
    job |= {"width": 64, "height": 64, "seed": SEED}
    out: dict[str, Any] = {}
    try:
        for seconds, fps in ((1, 24), (5, 30)):
            asked.clear()
            answer, _ = h.run({**job, "fps": fps, "duration_seconds": seconds})
            mp4 = data(answer["videos"][0])
            with av.open(io.BytesIO(mp4), mode="r") as container:
                stream = container.streams.video[0]
                rate = stream.average_rate
                lasts = float((stream.duration or 0) * (stream.time_base or 0))
            frames = decode_mp4(mp4)
            made = set(asked)
            expect(made == {seconds * 16 + 1}, f"{seconds} s: Wan was asked for {made} frames")
            expect(len(frames) == seconds * fps, f"{len(frames)} frames, not {seconds * fps}")
            expect(rate == fps, f"{rate} frames a second, not {fps}")
            expect(abs(lasts - seconds) < 1e-6, f"the video lasts {lasts} s, not {seconds}")
            out[f"{seconds}s_at_{fps}fps"] = {"made": sorted(made)[0], "frames": len(frames)}
            out[f"{seconds}s_at_{fps}fps"]["seconds"] = lasts
        for seconds in (6, 30):
            asked.clear()
            try:
                h.run({**job, "fps": 16, "duration_seconds": seconds})
            except BadInput as exc:
                expect(not asked, f"{seconds} s: refused only after the model ran")
                out[f"{seconds}s_refused"] = str(exc)
                continue
            raise Failed(f"{seconds} s at 16 fps was answered (Wan asked for {set(asked)})")
    finally:
        handle.remove()
    return out


def check_cancel(h: Harness, m: Models) -> dict[str, Any]:
    job = {
        "kind": "image",
        "model": m.flux,
        "prompt": "a photo of sks",
        "width": 64,
        "height": 64,
        "seed": SEED,
    }
    base = data(h.run(job)[0]["images"][0])
    lora_job = {**job, "inputs": [h.put("lora", m.lora or b"")]}
    try:
        h.run(lora_job if m.lora else job, cancel_at=1)
    except JobCancelled:
        pass
    else:
        raise Failed("a job cancelled at its first step ran to its end")
    expect(data(h.run(job)[0]["images"][0]) == base, "a cancelled LoRA job left its adapter")
    return {"with_lora": bool(m.lora)}


# -- the run -----------------------------------------------------------------------------

Check = Callable[[Harness, Models], dict[str, Any]]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    names = ("torch", "diffusers", "transformers", "accelerate", "peft", "ftfy", "av", "PIL")
    for name in names:
        try:
            out[name] = str(_m(name).__version__)
        except ImportError:
            out[name] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, help="write the results as JSON here")
    parser.add_argument("--only", nargs="*", help="run only these checks (and what they need)")
    args = parser.parse_args(argv)
    torch = _m("torch")
    for library in ("diffusers", "transformers"):
        logging = _m(f"{library}.utils.logging")
        logging.set_verbosity_error()
        logging.disable_progress_bar()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    begun = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "command": "python -m gpu_worker.cpu_check" + "".join(f" {a}" for a in argv or []),
        "engine": {"device": "cpu", "dtype": "float32", "steps": STEPS},
        "torch_threads": torch.get_num_threads(),
        "checks": [],
    }
    with tempfile.TemporaryDirectory(prefix="gpu-worker-cpu-check-") as tmp:
        started = time.perf_counter()
        folder = Path(tmp)
        sd = build_stable_diffusion(folder / "sd")
        models = Models(
            sd=str(sd),
            sd_flagging=str(build_flagging_stable_diffusion(sd, folder / "sd-flagging")),
            flux=str(build_flux(folder / "flux")),
            flux_schnell=str(build_flux(folder / "flux-schnell", guidance=False)),
            wan=str(build_wan(folder / "wan")),
            wan_i2v=str(build_wan_i2v(folder / "wan-i2v")),
            wan_flf2v=str(build_wan_i2v(folder / "wan-flf2v", keyframes=True)),
        )
        results["build_seconds"] = round(time.perf_counter() - started, 2)
        # the engine as a deployed worker makes it: from its environment
        folders = [str(v) for k, v in vars(models).items() if k != "lora"]
        env = {
            "GPU_WORKER_ENGINE": "diffusers",
            "GPU_WORKER_DEVICE": "cpu",
            "GPU_WORKER_DTYPE": "float32",
            "GPU_WORKER_STEPS": str(STEPS),
            "GPU_WORKER_TRAIN_RESOLUTION": str(TRAIN_RESOLUTION),
            "GPU_WORKER_MODELS": ",".join(folders),
            "GPU_WORKER_BASE_MODELS": (
                f"flux-tiny={models.flux},flux-schnell-tiny={models.flux_schnell}"
            ),
        }
        engine = engine_from_env(env, Controls)
        if not isinstance(engine, DiffusersEngine):
            raise Failed(f"the environment made the {engine.name} engine")
        harness = Harness(engine)
        checks: list[tuple[str, Check]] = [
            ("image: Stable Diffusion", lambda h, m: check_image(h, m, m.sd)),
            ("image: Flux", lambda h, m: check_image(h, m, m.flux)),
            ("edit: Stable Diffusion inpainting", lambda h, m: check_edit(h, m, m.sd)),
            ("edit: Flux inpainting", lambda h, m: check_edit(h, m, m.flux)),
            (
                "image: Flux negative prompt (true CFG)",
                lambda h, m: check_negative_prompt(h, m, "image"),
            ),
            (
                "edit: Flux inpainting negative prompt (true CFG)",
                lambda h, m: check_negative_prompt(h, m, "edit"),
            ),
            ("loading: dtype honoured, no deprecated argument", check_loading),
            ("refusal: a safety checker's flag", check_refusal),
            ("training: Flux LoRA", check_training),
            ("training: cancelled, then trained again", check_training_cancel),
            ("training: schnell (no guidance), in bfloat16", check_training_bf16),
            ("image: Flux with the trained LoRA", check_lora_image),
            ("image: a LoRA that does not load", check_bad_lora),
            ("video: Wan text-to-video", check_video),
            ("video: Wan image-to-video and keyframes", check_video_from_images),
            ("video: Wan frames at its own rate, within its window", check_video_frames),
            ("cancellation", check_cancel),
        ]
        for name, check in checks:
            if args.only and not any(word.lower() in name.lower() for word in args.only):
                continue
            started = time.perf_counter()
            entry: dict[str, Any] = {"check": name}
            try:
                entry["details"] = check(harness, models)
                entry["outcome"] = "passed"
            except Exception as exc:
                entry["outcome"] = "failed"
                entry["error"] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
            entry["seconds"] = round(time.perf_counter() - started, 2)
            results["checks"].append(entry)
            print(f"{entry['outcome']:6}  {entry['seconds']:7.2f} s  {name}", flush=True)
            if "error" in entry:
                print(f"        {entry['error']}", flush=True)
    results["total_seconds"] = round(time.perf_counter() - begun, 2)
    failed = [c["check"] for c in results["checks"] if c["outcome"] != "passed"]
    results["summary"] = f"{len(results['checks']) - len(failed)} passed, {len(failed)} failed"
    print(results["summary"])
    if args.results:
        args.results.write_text(json.dumps(results, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
