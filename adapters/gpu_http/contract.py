"""The worker input and output contract both GPU providers serve (docs/providers.md).

Input: one JSON object per job (``worker_input``). Output: ``{"images": [...]}``,
each image ``{"url": ..., "content_type": ...}`` or ``{"base64": ...,
"content_type": ...}``. A refusal on content grounds carries ``error_type:
"content"`` or the ``CONTENT_POLICY`` marker in its error text.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any

import httpx

from genstudio.core.model.job_params import EditParams, ImageParams, TrainingParams
from genstudio.core.model.jobs import FailureReason, JobError
from genstudio.ports.gpu import GpuRequest, OutputRole, ProviderOutput, ProviderUnavailable

#: an error text containing this (any case) is a content refusal: never retried
CONTENT_MARKER = "CONTENT_POLICY"
#: error_type values that say the same, and ones that say the job ran out of time
CONTENT_TYPES = frozenset({"content", "content_policy"})
TIMEOUT_TYPES = frozenset({"timeout", "timed_out"})

MAX_OUTPUT_BYTES = 50 * 1024 * 1024
ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def worker_input(request: GpuRequest, *, name: str) -> dict[str, Any]:
    """The job as the GPU worker receives it (Runpod's ``input``, Modal's body).

    A job that reads uploads lists them in ``inputs``, in order, each a signed,
    expiring URL the worker downloads (``{"name", "url", "content_type"}``; several may
    share a name). Edit and video jobs also name theirs in the fields workers have read
    since before that list (``image_url``, ``mask_url``, ``first_frame_url``,
    ``last_frame_url``). Raises ProviderUnavailable when an upload the job reads has
    no URL.
    """
    p = request.params
    common = {
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt,
        "seed": p.seed,
        "model": request.provider_model,
        "job_id": str(request.job_id),
    }
    given = {i.name for i in request.inputs}
    missing = [i.name for i in p.inputs() if i.name not in given]
    if missing:
        raise ProviderUnavailable(f"{name}: the job's {missing[0]} upload has no URL")

    if isinstance(p, TrainingParams):
        body: dict[str, Any] = {
            "kind": "training",
            "seed": p.seed,
            "model": request.provider_model,
            "job_id": str(request.job_id),
            "steps": p.steps,
            "trigger_word": p.trigger_word,
            "base_model": p.base_model,
            "sample_prompt": p.prompt,
        }
    elif isinstance(p, ImageParams):
        body = {
            "kind": "image",
            **common,
            "width": p.width,
            "height": p.height,
            "num_outputs": p.count,
        }
        if p.lora_key is not None:  # the weights travel as the ``lora`` input
            body["lora_scale"] = p.lora_scale
    elif isinstance(p, EditParams):
        body = {
            "kind": "edit",
            **common,
            "width": p.width,
            "height": p.height,
            "strength": p.strength,
        }
    else:
        width, height = p.size
        body = {
            "kind": "video",
            **common,
            "input_type": p.input_type.value,
            "width": width,
            "height": height,
            "fps": p.fps,
            "duration_seconds": p.duration_seconds,
        }
    for field in LEGACY_URL_FIELDS:
        first = request.first(field)
        if first is not None:
            body[f"{field}_url"] = first.url
    if request.inputs:
        body["inputs"] = [
            {"name": i.name, "url": i.url, "content_type": i.content_type} for i in request.inputs
        ]
    return body


#: the inputs that edit and video jobs also send as ``<name>_url`` (docs/providers.md)
LEGACY_URL_FIELDS = ("image", "mask", "first_frame", "last_frame")


def decode_outputs(output: object) -> tuple[ProviderOutput, ...] | JobError:
    """Image and edit jobs answer ``{"images": [...]}``; video jobs
    ``{"videos": [...], "posters": [...]}`` (the n-th poster is the n-th video's);
    training jobs ``{"weights": {...}, "samples": [...]}``."""
    if isinstance(output, dict) and "weights" in output:
        return _decode_training(output)
    if isinstance(output, dict) and isinstance(output.get("videos"), list):
        videos = _decode_files(
            output["videos"], "video", VIDEO_CONTENT_TYPES, OutputRole.RESULT, "video/mp4"
        )
        if isinstance(videos, JobError):
            return videos
        posters = _decode_files(
            output.get("posters") or [], "poster", ALLOWED_CONTENT_TYPES, OutputRole.POSTER
        )
        if isinstance(posters, JobError):
            return posters
        if not videos:
            return _broken("the output has no videos")
        if len(posters) != len(videos):
            return _broken("every video needs its poster frame")
        return (*videos, *posters)
    return decode_images(output)


VIDEO_CONTENT_TYPES = frozenset({"video/mp4"})
WEIGHTS_CONTENT_TYPES = frozenset({"application/octet-stream", "application/x-safetensors"})
#: a LoRA's weights may be far larger than an image: their own download cap
MAX_WEIGHTS_BYTES = 1024 * 1024 * 1024


def _decode_training(output: dict[str, Any]) -> tuple[ProviderOutput, ...] | JobError:
    """One weights file (``.safetensors``, best by URL) and at least one sample image."""
    weights = _decode_files(
        [output["weights"]],
        "weights",
        WEIGHTS_CONTENT_TYPES,
        OutputRole.WEIGHTS,
        "application/octet-stream",
        max_bytes=MAX_WEIGHTS_BYTES,
    )
    if isinstance(weights, JobError):
        return weights
    samples = output.get("samples")
    if not isinstance(samples, list) or not samples:
        return _broken("the training output has no sample images")
    images = _decode_files(samples, "sample", ALLOWED_CONTENT_TYPES, OutputRole.RESULT)
    if isinstance(images, JobError):
        return images
    return (*weights, *images)


def progress_of(body: object) -> int:
    """A running job's progress, 0-99: ``{"progress": 0-100}``, or a training's
    ``{"step": n, "total": m}``; anything else is 0."""
    if not isinstance(body, dict):
        return 0
    step, total = _number(body.get("step")), _number(body.get("total"))
    if step is not None and total is not None and total > 0:
        return max(0, min(99, int(100 * step / total)))
    value = _number(body.get("progress"))
    return 0 if value is None else max(0, min(99, int(value)))


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _decode_files(
    items: list[object],
    what: str,
    allowed: frozenset[str],
    role: OutputRole,
    default: str = "image/png",
    *,
    max_bytes: int = MAX_OUTPUT_BYTES,
) -> tuple[ProviderOutput, ...] | JobError:
    files: list[ProviderOutput] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            return _broken(f"{what} {index} is not an object")
        content_type = item.get("content_type") or default
        if not isinstance(content_type, str) or content_type not in allowed:
            return _broken(f"{what} {index} has content type {content_type!r}")
        url, b64 = item.get("url"), item.get("base64")
        if isinstance(b64, str):
            if b64.startswith("data:"):
                b64 = b64.partition(",")[2]
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                return _broken(f"{what} {index} is not valid base64")
            if len(data) > max_bytes:
                return _broken(f"{what} {index} is larger than {max_bytes} bytes")
            files.append(ProviderOutput(content_type=content_type, data=data, role=role))
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            files.append(ProviderOutput(content_type=content_type, url=url, role=role))
        else:
            return _broken(f"{what} {index} has neither 'base64' nor an http(s) 'url'")
    return tuple(files)


def decode_images(output: object) -> tuple[ProviderOutput, ...] | JobError:
    """The outputs of a finished image or edit job, or why its output breaks the contract."""
    if not isinstance(output, dict) or not isinstance(output.get("images"), list):
        return _broken("the output has no 'images' list")
    images = _decode_files(output["images"], "image", ALLOWED_CONTENT_TYPES, OutputRole.RESULT)
    if isinstance(images, JobError):
        return images
    if not images:
        return _broken("the output has no images")
    return images


def classify_failure(error: object, error_type: object = None) -> JobError:
    """A failed job's error, by the contract: content refusal, timeout, or infrastructure.

    ``error`` may be plain text or, from runpod-python's exception handler, a JSON
    object in a string with ``error_type`` (the exception class) and
    ``error_message``; both are searched for the content marker.
    """
    text = error if isinstance(error, str) else json.dumps(error) if error else ""
    kinds: list[str] = [error_type] if isinstance(error_type, str) else []
    message = text
    try:
        parsed = json.loads(text) if text.lstrip().startswith("{") else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        if isinstance(parsed.get("error_type"), str):
            kinds.append(parsed["error_type"])
        if isinstance(parsed.get("error_message"), str):
            message = parsed["error_message"]
    lowered = {k.lower() for k in kinds}
    message = message.strip()[:500] or "the provider reported a failure"
    if lowered & CONTENT_TYPES or CONTENT_MARKER.lower() in text.lower():
        return JobError(FailureReason.CONTENT, message)
    if lowered & TIMEOUT_TYPES:
        return JobError(FailureReason.TIMEOUT, message)
    return JobError(FailureReason.INFRASTRUCTURE, message)


async def fetch_output(
    client: httpx.AsyncClient,
    output: ProviderOutput,
    *,
    name: str,
    time_limit: float,
    max_bytes: int = MAX_OUTPUT_BYTES,
) -> bytes:
    """Inline bytes, or the URL downloaded (no credentials sent) within ``time_limit``
    seconds and ``max_bytes``. Raises ProviderUnavailable."""
    if output.data is not None:
        return output.data
    if output.url is None:
        raise ProviderUnavailable(f"{name}: the output has neither inline data nor a URL")
    try:
        async with asyncio.timeout(time_limit):
            async with client.stream("GET", output.url, timeout=time_limit, headers={}) as resp:
                if resp.status_code != 200:
                    raise ProviderUnavailable(
                        f"{name}: downloading an output answered HTTP {resp.status_code}"
                    )
                declared = resp.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                    raise ProviderUnavailable(
                        f"{name}: the output is {declared} bytes, over the {max_bytes} limit"
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise ProviderUnavailable(
                            f"{name}: the output is over the {max_bytes} byte limit"
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
    except (TimeoutError, httpx.TimeoutException):
        raise ProviderUnavailable(
            f"{name}: downloading an output timed out after {time_limit:g}s"
        ) from None
    except httpx.HTTPError as exc:
        raise ProviderUnavailable(
            f"{name}: downloading an output failed: {type(exc).__name__}: {exc}"
        ) from exc


def _broken(why: str) -> JobError:
    return JobError(
        FailureReason.INFRASTRUCTURE, f"the provider's output breaks the contract: {why}"
    )


def output_cap(output: ProviderOutput, configured: int) -> int:
    """The download cap of one output: the configured one, or the weights' own."""
    return max(configured, MAX_WEIGHTS_BYTES) if output.role is OutputRole.WEIGHTS else configured
