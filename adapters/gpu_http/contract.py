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

from core.jobs import FailureReason, ImageParams, JobError
from ports.gpu import GpuRequest, ProviderOutput, ProviderUnavailable

#: an error text containing this (any case) is a content refusal: never retried
CONTENT_MARKER = "CONTENT_POLICY"
#: error_type values that say the same, and ones that say the job ran out of time
CONTENT_TYPES = frozenset({"content", "content_policy"})
TIMEOUT_TYPES = frozenset({"timeout", "timed_out"})

MAX_OUTPUT_BYTES = 50 * 1024 * 1024
ALLOWED_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


def worker_input(request: GpuRequest, *, name: str) -> dict[str, Any]:
    """The job as the GPU worker receives it (Runpod's ``input``, Modal's body).

    Image jobs only: edit and video jobs read uploads, which need signed input URLs
    in the contract first. Raises ProviderUnavailable for them, so they go elsewhere.
    """
    p = request.params
    if not isinstance(p, ImageParams):
        raise ProviderUnavailable(f"{name}: {type(p).__name__} jobs are not supported yet")
    return {
        "kind": "image",
        "prompt": p.prompt,
        "negative_prompt": p.negative_prompt,
        "width": p.width,
        "height": p.height,
        "num_outputs": p.count,
        "seed": p.seed,
        "model": request.provider_model,
        "job_id": str(request.job_id),
    }


def decode_images(output: object) -> tuple[ProviderOutput, ...] | JobError:
    """The outputs of a finished job, or why its output breaks the contract."""
    if not isinstance(output, dict) or not isinstance(output.get("images"), list):
        return _broken("the output has no 'images' list")
    images: list[ProviderOutput] = []
    for index, item in enumerate(output["images"]):
        if not isinstance(item, dict):
            return _broken(f"image {index} is not an object")
        content_type = item.get("content_type") or "image/png"
        if not isinstance(content_type, str) or content_type not in ALLOWED_CONTENT_TYPES:
            return _broken(f"image {index} has content type {content_type!r}")
        url, b64 = item.get("url"), item.get("base64")
        if isinstance(b64, str):
            if b64.startswith("data:"):  # a data URI: data:image/png;base64,....
                b64 = b64.partition(",")[2]
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                return _broken(f"image {index} is not valid base64")
            if len(data) > MAX_OUTPUT_BYTES:
                return _broken(f"image {index} is larger than {MAX_OUTPUT_BYTES} bytes")
            images.append(ProviderOutput(content_type=content_type, data=data))
        elif isinstance(url, str) and url.startswith(("https://", "http://")):
            images.append(ProviderOutput(content_type=content_type, url=url))
        else:
            return _broken(f"image {index} has neither 'base64' nor an http(s) 'url'")
    if not images:
        return _broken("the output has no images")
    return tuple(images)


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
