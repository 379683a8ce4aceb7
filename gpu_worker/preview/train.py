"""A LoRA trained in miniature on the CPU: real gradient descent, a real .safetensors.

Each "module" is a rank-4 low-rank map (``lora_down`` 4x64, ``lora_up`` 64x4, kohya's
names and layout) fitted, one step per training step, to reconstruct a view of the
photos (8x8 luminance, red and blue planes, centred). Not a diffusion model's LoRA:
the file has the shape of one, so the whole journey runs without a GPU.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from safetensors.numpy import save

RANK = 4
SIDE = 8
MODULES = (
    "lora_unet_single_blocks_0_linear1",
    "lora_unet_single_blocks_0_linear2",
    "lora_unet_double_blocks_0_img_attn_qkv",
)
LEARNING_RATE = 0.05

Array = NDArray[np.float32]


def _views(photos: Sequence[bytes]) -> list[Array]:
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


def train(
    photos: Sequence[bytes],
    *,
    steps: int,
    trigger_word: str,
    seed: int | None,
    on_step: Callable[[int], None],
) -> bytes:
    """The weights after ``steps`` steps; ``on_step(n)`` after step n (it may raise)."""
    if not photos:
        raise ValueError("training needs photos")
    rng = np.random.default_rng(seed if seed is not None else 0)
    views = _views(photos)
    downs = [rng.normal(0, 0.1, (RANK, SIDE * SIDE)).astype(np.float32) for _ in MODULES]
    ups = [rng.normal(0, 0.01, (SIDE * SIDE, RANK)).astype(np.float32) for _ in MODULES]
    for step in range(1, steps + 1):
        for m, x in enumerate(views):
            n = max(1, x.shape[0])
            hidden = x @ downs[m].T
            error = hidden @ ups[m].T - x
            grad_up = 2 * error.T @ hidden / n
            grad_down = 2 * (error @ ups[m]).T @ x / n
            ups[m] -= LEARNING_RATE * grad_up
            downs[m] -= LEARNING_RATE * grad_down
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
        "genstudio_trainer": "gpu-worker-preview",
    }
    return save(tensors, metadata=metadata)


def lora_colour(weights: bytes) -> tuple[int, int, int]:
    """A colour read from the weights (any safetensors LoRA): how a preview shows one.

    Raises ValueError when the file is not a readable .safetensors."""
    from safetensors.numpy import load

    try:
        tensors = load(weights)
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"the LoRA is not a readable .safetensors file: {exc}") from None
    if not tensors:
        raise ValueError("the LoRA holds no tensors")
    values = np.concatenate([np.asarray(t, dtype=np.float32).reshape(-1) for t in tensors.values()])
    digest = np.abs(values).sum() * 1000
    return int(digest) % 256, int(digest / 7) % 256, int(digest / 13) % 256
