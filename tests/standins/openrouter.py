"""An OpenRouter stand-in: ``POST /api/v1/chat/completions`` (OpenAI-compatible).

- Auth: ``Authorization: Bearer <api_key>``, else 401 ``{"error": {"code": 401, ...}}``.
- The body must name a ``model`` and carry ``messages`` (roles system/user/assistant;
  content a string or a list of ``text`` / ``image_url`` parts). An ``image_url`` must
  be a ``data:image/<png|jpeg|webp|gif>;base64,...`` URL whose bytes decode strictly and
  start with that type's signature (or an ``https://`` URL), else 400.
- The answer is deterministic: for a request with images, ``caption_for(bytes, type)``
  of the first one; otherwise ``enhancement_for(last user text)``.

Knobs (``inject``): ``Fail(500)``, ``RateLimit(retry_after)``, ``Stall(seconds)`` from
tests.standins.loopback, and here ``Malformed()`` (200, a body that is not JSON),
``EmptyChoices()``, ``EmptyAnswer()``, ``LongAnswer(chars)``, ``Answer(text)``, and
``ErrorInBody()`` (200 with ``{"error": ...}``, as when the model fails mid-answer).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

PATH = "/api/v1/chat/completions"

_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_DATA_URL = re.compile(r"^data:(image/[a-z]+);base64,([A-Za-z0-9+/=]+)$")


@dataclass(frozen=True)
class Malformed(Fault):
    pass


@dataclass(frozen=True)
class EmptyChoices(Fault):
    pass


@dataclass(frozen=True)
class EmptyAnswer(Fault):
    pass


@dataclass(frozen=True)
class LongAnswer(Fault):
    chars: int = 5000


@dataclass(frozen=True)
class Answer(Fault):
    """Answer exactly this text (as a model might: quoted, labelled, on several lines)."""

    text: str


@dataclass(frozen=True)
class ErrorInBody(Fault):
    code: int = 502
    message: str = "Provider returned error"


def caption_for(image: bytes, content_type: str) -> str:
    kind = content_type.removeprefix("image/").upper()
    return f"a {kind} picture of {len(image)} bytes, {hashlib.sha256(image).hexdigest()[:12]}"


def enhancement_for(prompt: str) -> str:
    return f"{prompt}, golden hour light, intricate detail, 35mm photograph"


class BadRequest(Exception):
    pass


class OpenRouterStandIn(LoopbackStandIn):
    name = "openrouter-stand-in"

    def __init__(self, *, api_key: str = "sk-or-v1-stand-in") -> None:
        super().__init__()
        self.api_key = api_key
        self.images: list[tuple[bytes, str]] = []  # every image that arrived, decoded

    @property
    def base_url(self) -> str:
        """What OpenRouterClient takes as ``base_url`` (OPENROUTER_BASE_URL)."""
        return f"{self.url}/api/v1"

    def reset(self) -> None:
        super().reset()
        self.images.clear()

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply({"error": {"code": status, "message": message}}, status, headers)

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if (request.method, request.path) != ("POST", PATH):
            return self.error_reply(404, "Not Found", {})
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error_reply(401, "No auth credentials found", {})
        try:
            model, answer = self._answer(request)
        except BadRequest as exc:
            return self.error_reply(400, str(exc), {})

        if isinstance(fault, Malformed):
            return Reply(
                200, b'{"id": "gen-1", "choices": [{"message": {"content": "a', "application/json"
            )
        if isinstance(fault, ErrorInBody):
            return json_reply({"error": {"code": fault.code, "message": fault.message}})
        if isinstance(fault, EmptyAnswer):
            answer = ""
        if isinstance(fault, Answer):
            answer = fault.text
        if isinstance(fault, LongAnswer):
            answer = ("very " * fault.chars)[: fault.chars]
        choices = (
            []
            if isinstance(fault, EmptyChoices)
            else [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop",
                    "native_finish_reason": "stop",
                }
            ]
        )
        return json_reply(
            {
                "id": f"gen-{uuid.uuid4().hex}",
                "provider": "stand-in",
                "model": model,
                "object": "chat.completion",
                "created": int(time.time()),
                "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            }
        )

    def _answer(self, request: Request) -> tuple[str, str]:
        try:
            body = request.json()
        except ValueError:
            raise BadRequest("the body is not JSON") from None
        model, messages = body.get("model"), body.get("messages")
        if not isinstance(model, str) or not model:
            raise BadRequest("model is required")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty array")
        texts: list[str] = []
        images: list[tuple[bytes, str]] = []
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in (
                "system",
                "user",
                "assistant",
            ):
                raise BadRequest("each message needs a role of system, user or assistant")
            content = message.get("content")
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            if not isinstance(parts, list) or not parts:
                raise BadRequest("content must be a string or an array of parts")
            for part in parts:
                self._read_part(part, message["role"], texts, images)
        self.images.extend(images)
        if images:
            return model, caption_for(*images[0])
        if not texts:
            raise BadRequest("no user text to answer")
        return model, enhancement_for(texts[-1])

    @staticmethod
    def _read_part(part: Any, role: str, texts: list[str], images: list[tuple[bytes, str]]) -> None:
        if not isinstance(part, dict):
            raise BadRequest("a content part must be an object")
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            if role == "user":
                texts.append(part["text"])
            return
        if part.get("type") != "image_url":
            raise BadRequest(f"unknown content part {part.get('type')!r}")
        url = (part.get("image_url") or {}).get("url")
        if not isinstance(url, str):
            raise BadRequest("image_url.url is required")
        if url.startswith("https://"):
            images.append((url.encode(), "image/url"))
            return
        match = _DATA_URL.match(url)
        if match is None or match.group(1) not in _SIGNATURES:
            raise BadRequest("image_url must be an https URL or a base64 image data URL")
        content_type = match.group(1)
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except binascii.Error:
            raise BadRequest("the image's base64 does not decode") from None
        if not data.startswith(_SIGNATURES[content_type]):
            raise BadRequest(f"the image is not a {content_type}")
        images.append((data, content_type))
