"""The embedded default's LoRA trainer: real training, in miniature, on the CPU.

Not a diffusion model's LoRA: each "module" is a rank-4 low-rank map (``lora_down``
4x64, ``lora_up`` 64x4, kohya's names and layout) fitted by gradient descent, one
step per training step, to reconstruct a view of the user's photos (8x8 luminance,
red and blue planes, centred). The loss really falls, the tensors really come from
the photos, and the file is a valid ``.safetensors`` that any safetensors reader
opens, so the whole journey (upload, train, progress, weights, generate with it)
runs end to end without a GPU.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from safetensors.numpy import save

from genstudio.adapters.gpu_local.renderer import render_png

RANK = 4
SIDE = 8  # photos are read at 8x8: 64 features per view
SAMPLE_SIDE = 256
#: kohya-style module names of a Flux LoRA, one per view of the photos
MODULES = (
    "lora_unet_single_blocks_0_linear1",
    "lora_unet_single_blocks_0_linear2",
    "lora_unet_double_blocks_0_img_attn_qkv",
)
LEARNING_RATE = 0.05

Array = NDArray[np.float32]


def _views(photos: Sequence[bytes]) -> list[Array]:
    """Per module, the photos as rows of 64 centred features (luminance, red, blue)."""
    rows: list[list[Array]] = [[], [], []]
    for data in photos:
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        pixels = np.asarray(rgb, dtype=np.float32) / 255.0
        luminance = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        for n, plane in enumerate((luminance, pixels[..., 0], pixels[..., 2])):
            rows[n].append(plane.reshape(-1))
    views = []
    for planes in rows:
        x = np.stack(planes)
        views.append((x - x.mean(axis=0)).astype(np.float32))
    return views


def train_lora(
    photos: Sequence[bytes],
    *,
    steps: int,
    trigger_word: str,
    seed: int | None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[bytes, bytes, float]:
    """Train ``steps`` steps on the photos; returns (safetensors bytes, a sample PNG,
    the final reconstruction loss). ``on_step(n)`` is called after step n (it may
    raise to stop the training)."""
    if not photos:
        raise ValueError("training needs photos")
    rng = np.random.default_rng(seed if seed is not None else 0)
    views = _views(photos)
    downs = [rng.normal(0, 0.1, (RANK, SIDE * SIDE)).astype(np.float32) for _ in MODULES]
    ups = [np.zeros((SIDE * SIDE, RANK), dtype=np.float32) for _ in MODULES]
    ups = [u + rng.normal(0, 0.01, u.shape).astype(np.float32) for u in ups]
    loss = 0.0
    for step in range(1, steps + 1):
        loss = 0.0
        for m, x in enumerate(views):
            loss += _step(x, downs[m], ups[m])
        if on_step is not None:
            on_step(step)
    tensors: dict[str, Array] = {}
    for m, name in enumerate(MODULES):
        tensors[f"{name}.lora_down.weight"] = downs[m]
        tensors[f"{name}.lora_up.weight"] = ups[m]
        tensors[f"{name}.alpha"] = np.array(float(RANK), dtype=np.float32)
    metadata = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(RANK),
        "ss_steps": str(steps),
        "trigger_word": trigger_word,
        "genstudio_trainer": "cpu-preview",
    }
    weights = save(tensors, metadata=metadata)
    return weights, _sample(photos, trigger_word, seed), loss / len(views)


def _step(x: Array, down: Array, up: Array) -> float:
    """One gradient step of ``|| x - x down^T up^T ||^2 / n`` on both factors, in place."""
    n = max(1, x.shape[0])
    hidden = x @ down.T  # n x r
    error = hidden @ up.T - x  # n x d
    grad_up = 2 * error.T @ hidden / n
    grad_down = 2 * (error @ up).T @ x / n
    up -= LEARNING_RATE * grad_up
    down -= LEARNING_RATE * grad_down
    return float((error**2).mean())


def _sample(photos: Sequence[bytes], trigger_word: str, seed: int | None) -> bytes:
    """A preview: the mean of the photos over the preview renderer's picture."""
    frames = []
    for data in photos:
        with Image.open(io.BytesIO(data)) as image:
            frames.append(
                np.asarray(
                    image.convert("RGB").resize((SAMPLE_SIDE, SAMPLE_SIDE)), dtype=np.float32
                )
            )
    mean = Image.fromarray(np.mean(frames, axis=0).astype(np.uint8), "RGB")
    rendered = render_png(
        prompt=f"a photo of {trigger_word}",
        negative_prompt="",
        seed=seed,
        width=SAMPLE_SIDE,
        height=SAMPLE_SIDE,
        index=0,
    )
    with Image.open(io.BytesIO(rendered)) as picture:
        blended = Image.blend(picture.convert("RGB"), mean, 0.6)
    out = io.BytesIO()
    blended.save(out, format="PNG")
    return out.getvalue()
