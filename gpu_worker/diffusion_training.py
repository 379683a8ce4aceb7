"""A personal LoRA for a Flux pipeline, trained on the GPU (the diffusers engine's
training): flow matching on the photos' latents, LoRA adapters (peft) on the
transformer's attention projections, the weights saved in diffusers' PEFT layout
(``lora_A`` / ``lora_B`` pairs) as one ``.safetensors`` file.

The loop follows diffusers' ``examples/dreambooth/train_dreambooth_lora_flux.py``
(one photo per step, the instance prompt embedded once, uniform timesteps), without
accelerate, prior preservation or text-encoder training. GPU only; not exercised by
the test suite.
"""

from __future__ import annotations

import importlib
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from gpu_worker.engine import Context
from gpu_worker.preview.render import decode

RANK = 16
LEARNING_RATE = 1e-4
TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]
GUIDANCE = 3.5  # for guidance-distilled transformers (FLUX.1-dev), as diffusers' script


def train_flux_lora(
    pipe: Any,
    photos: Sequence[bytes],
    *,
    steps: int,
    prompt: str,
    seed: int | None,
    resolution: int,
    ctx: Context,
) -> bytes:
    """The trained weights; reports (step, steps) and stops when ``ctx`` is cancelled."""
    torch = importlib.import_module("torch")
    peft = importlib.import_module("peft")
    peft_utils = importlib.import_module("peft.utils")
    diffusers = importlib.import_module("diffusers")
    if seed is not None:
        torch.manual_seed(seed)
    rng = random.Random(seed)
    device, dtype = pipe.transformer.device, pipe.transformer.dtype
    transformer, vae = pipe.transformer, pipe.vae

    with torch.no_grad():
        prompt_embeds, pooled, text_ids = pipe.encode_prompt(
            prompt=prompt, prompt_2=prompt, device=device, max_sequence_length=512
        )
        latents = [
            _latents(vae, photo, resolution, flip) for photo in photos for flip in (False, True)
        ]

    transformer.requires_grad_(False)  # only the adapters train
    transformer.add_adapter(
        peft.LoraConfig(
            r=RANK, lora_alpha=RANK, init_lora_weights="gaussian", target_modules=TARGETS
        ),
        adapter_name="user",
    )
    try:  # the pipeline serves image jobs afterwards: the adapter goes, however this ends
        transformer.enable_gradient_checkpointing()
        params = [p for p in transformer.parameters() if p.requires_grad]
        for p in params:
            p.data = p.data.float()  # train the adapters in float32, the rest stays bf16
        optimizer = torch.optim.AdamW(params, lr=LEARNING_RATE, weight_decay=1e-4)
        transformer.train()
        for step in range(1, steps + 1):
            x0 = rng.choice(latents)
            noise = torch.randn_like(x0)
            sigma = torch.rand((1,), device=device, dtype=x0.dtype).view(1, 1, 1, 1)
            noisy = (1.0 - sigma) * x0 + sigma * noise
            packed = _pack(noisy)
            image_ids = _image_ids(torch, x0.shape[2], x0.shape[3]).to(device, dtype)
            guidance = (
                torch.full((1,), GUIDANCE, device=device)
                if transformer.config.guidance_embeds
                else None
            )
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                prediction = transformer(
                    hidden_states=packed,
                    timestep=sigma.view(1),
                    guidance=guidance,
                    pooled_projections=pooled,
                    encoder_hidden_states=prompt_embeds,
                    txt_ids=text_ids,
                    img_ids=image_ids,
                    return_dict=False,
                )[0]
            prediction = _unpack(prediction, x0.shape)
            loss = torch.nn.functional.mse_loss(prediction.float(), (noise - x0).float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            ctx.progress(step, steps)
        layers = peft_utils.get_peft_model_state_dict(transformer, adapter_name="user")
    finally:
        transformer.eval()
        transformer.disable_gradient_checkpointing()
        transformer.delete_adapters("user")
    with tempfile.TemporaryDirectory() as folder:
        diffusers.FluxPipeline.save_lora_weights(
            save_directory=folder,
            transformer_lora_layers={k: v.to(dtype) for k, v in layers.items()},
            weight_name="lora.safetensors",
        )
        return (Path(folder) / "lora.safetensors").read_bytes()


def _latents(vae: Any, photo: bytes, resolution: int, flip: bool) -> Any:
    """The photo's VAE latents, scaled and shifted as Flux expects."""
    torch = importlib.import_module("torch")
    image = ImageOps.fit(
        decode(photo).convert("RGB"), (resolution, resolution), Image.Resampling.LANCZOS
    )
    if flip:
        image = ImageOps.mirror(image)
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).copy())  # (h, w, 3)
    pixels = (pixels / 127.5 - 1.0).permute(2, 0, 1).unsqueeze(0).to(vae.device, vae.dtype)
    latent = vae.encode(pixels).latent_dist.sample()
    return (latent - vae.config.shift_factor) * vae.config.scaling_factor


# Flux's transformer reads latents as a sequence of 2x2 patches; these three helpers are
# what the Flux pipeline does to its latents (spelled out: the pipeline's own are private).


def _pack(latents: Any) -> Any:
    """(b, c, h, w) -> (b, h/2 * w/2, c * 4)."""
    b, c, h, w = latents.shape
    patches = latents.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, (h // 2) * (w // 2), c * 4)


def _unpack(packed: Any, shape: Any) -> Any:
    """The inverse of ``_pack`` for latents of ``shape``."""
    b, c, h, w = shape
    patches = packed.view(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(b, c, h, w)


def _image_ids(torch: Any, h: int, w: int) -> Any:
    """Each patch's position: (h/2 * w/2, 3) rows of [0, row, column]."""
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] = ids[..., 1] + torch.arange(h // 2)[:, None]
    ids[..., 2] = ids[..., 2] + torch.arange(w // 2)[None, :]
    return ids.reshape(-1, 3)
