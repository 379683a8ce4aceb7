"""Captions and prompt enhancement through OpenRouter's chat completions API.

``POST {base_url}/chat/completions`` (OpenAI-compatible) with ``Authorization: Bearer``,
and optionally ``HTTP-Referer`` / ``X-Title`` naming the app. A caption request sends the
image as an ``image_url`` content part holding a ``data:<type>;base64,...`` URL; an
enhancement request sends text only. The answer is ``choices[0].message.content``.
Errors come as ``{"error": {"code", "message"}}``, with the HTTP status, or with 200
when the model failed mid-answer.

Both operations are optional extras, so nothing here retries: one try, bounded by
``timeout`` from start to finish. ``caption`` raises CaptionUnavailable; ``enhance``
returns the prompt unchanged and logs why.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from typing import Any

import httpx
import msgspec

from genstudio.ports.ai import CAPTION_CONTENT_TYPES, MAX_CAPTION, MAX_PROMPT, CaptionUnavailable

log = logging.getLogger("genstudio.openrouter")

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
MAX_IMAGE_BYTES = 10 * 1024 * 1024

CAPTION_INSTRUCTIONS = (
    "You write alt text. Describe the image in one plain sentence of at most 30 words: "
    "the subject, the setting and the style. No preamble, no quotes, no markdown."
)
ENHANCE_INSTRUCTIONS = (
    "You improve prompts for an image generator. Rewrite the user's prompt into one richer "
    "prompt for the same picture: keep every subject and constraint it names, add concrete "
    "detail about composition, lighting, style and medium. Answer with the prompt only, on "
    "one line, no preamble, no quotes, at most {limit} characters."
)


class _Message(msgspec.Struct):
    content: str | list[dict[str, Any]] | None = None


class _Error(msgspec.Struct):
    message: str = ""
    code: int | str | None = None


class _Choice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None
    error: _Error | None = None


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    error: _Error | None = None


_decode_completion = msgspec.json.Decoder(_Completion)
_LABEL = re.compile(r"^\s*(?:enhanced\s+|improved\s+|rewritten\s+)?prompt\s*:\s*", re.IGNORECASE)


class CompletionFailed(Exception):
    """One chat completion did not give a usable answer; the message says why."""


class OpenRouterClient:
    """``Captioner`` and ``PromptEnhancer`` on OpenRouter: a vision model captions, a text
    model enhances."""

    def __init__(
        self,
        *,
        api_key: str,
        caption_model: str,
        enhance_model: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = 20.0,
        client: httpx.AsyncClient | None = None,
        app_url: str | None = None,
        app_title: str | None = None,
        max_prompt: int = MAX_PROMPT,
    ) -> None:
        if not api_key:
            raise ValueError("OpenRouterClient needs an API key")
        self.base_url = base_url.rstrip("/")
        self.caption_model = caption_model
        self.enhance_model = enhance_model
        self.timeout = timeout
        self.max_prompt = max_prompt
        self._headers = {"Authorization": f"Bearer {api_key}"}
        if app_url:
            self._headers["HTTP-Referer"] = app_url
        if app_title:
            self._headers["X-Title"] = app_title
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()

    # -- Captioner ------------------------------------------------------------------------

    async def caption(self, image: bytes, content_type: str) -> str:
        if content_type not in CAPTION_CONTENT_TYPES:
            raise CaptionUnavailable(f"cannot caption {content_type!r} images")
        if not image or len(image) > MAX_IMAGE_BYTES:
            raise CaptionUnavailable(f"cannot caption an image of {len(image)} bytes")
        data_url = f"data:{content_type};base64,{base64.b64encode(image).decode('ascii')}"
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": CAPTION_INSTRUCTIONS},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this image."},
                    {"type": "image_url", "image_url": {"url": data_url}},
                ],
            },
        ]
        try:
            answer = await self._complete(self.caption_model, messages, max_tokens=120)
        except CompletionFailed as exc:
            raise CaptionUnavailable(f"OpenRouter gave no caption: {exc}") from exc
        text = _one_line(answer)
        if not text:
            raise CaptionUnavailable("OpenRouter answered an empty caption")
        return _shorten(text, MAX_CAPTION)

    # -- PromptEnhancer ---------------------------------------------------------------------

    async def enhance(self, prompt: str) -> str:
        if not prompt.strip():
            return prompt
        messages = [
            {"role": "system", "content": ENHANCE_INSTRUCTIONS.format(limit=self.max_prompt)},
            {"role": "user", "content": prompt},
        ]
        try:
            answer = await self._complete(self.enhance_model, messages, max_tokens=600)
        except CompletionFailed as exc:
            return self._fall_back(prompt, str(exc))
        enhanced = _LABEL.sub("", _one_line(answer), count=1).strip()
        if not enhanced:
            return self._fall_back(prompt, "the answer was empty")
        if len(enhanced) > self.max_prompt:
            return self._fall_back(
                prompt, f"the answer has {len(enhanced)} characters, over {self.max_prompt}"
            )
        return enhanced

    def _fall_back(self, prompt: str, reason: str) -> str:
        log.warning(
            "prompt enhancement failed; keeping the original prompt",
            extra={"reason": reason, "model": self.enhance_model},
        )
        return prompt

    # -- lifecycle ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP client, if this one made it."""
        if self._owns_client:
            await self._client.aclose()

    # -- HTTP ----------------------------------------------------------------------------

    async def _complete(
        self, model: str, messages: list[dict[str, Any]], *, max_tokens: int
    ) -> str:
        """The first choice's text. Raises CompletionFailed for anything else."""
        body = {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": 0.4}
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(
                    f"{self.base_url}/chat/completions",
                    json=body,
                    headers=self._headers,
                    timeout=self.timeout,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise CompletionFailed(f"no answer within {self.timeout}s") from exc
        except httpx.TransportError as exc:
            raise CompletionFailed(f"unreachable: {exc!r}") from exc
        try:
            completion = _decode_completion.decode(response.content)
        except msgspec.DecodeError as exc:
            if response.is_success:
                raise CompletionFailed(f"malformed answer: {exc}") from exc
            completion = _Completion()
        if not response.is_success:
            message = completion.error.message if completion.error else response.reason_phrase
            raise CompletionFailed(f"HTTP {response.status_code}: {message}")
        if completion.error is not None:
            raise CompletionFailed(f"error {completion.error.code}: {completion.error.message}")
        if not completion.choices:
            raise CompletionFailed("the answer has no choices")
        choice = completion.choices[0]
        if choice.error is not None:
            raise CompletionFailed(f"error {choice.error.code}: {choice.error.message}")
        if choice.finish_reason == "error":
            raise CompletionFailed("the model stopped with an error")
        content = choice.message.content if choice.message else None
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if p.get("type") == "text")
        if not content:
            raise CompletionFailed("the answer is empty")
        return content


def _one_line(text: str) -> str:
    """Whitespace collapsed, wrapping quotes and markdown emphasis taken off."""
    text = " ".join(text.split())
    for _ in range(2):
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`*":
            text = text[1:-1].strip()
    return text


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:") + "…"
