"""OpenAI's moderation endpoint on loopback (``POST /v1/moderations``), from its API
reference: the request's ``model`` and ``input`` (a string, or content parts of type
``text`` / ``image_url`` with a data URL), the answer's ``results[0]`` with
``flagged``, ``categories`` and ``category_scores``; errors as ``{"error": {...}}``.

Scores come from ``scores`` (a word in the text -> its category scores) and
``image_scores`` (for any image); everything else scores 0.0001. Knobs: the loopback
faults (Fail, RateLimit, Stall) and ``Malformed``.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from typing import Any

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

PATH = "/v1/moderations"
CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip


@dataclass(frozen=True)
class Malformed(Fault):
    """200 with a body that is not the documented JSON."""


class OpenAIModerationStandIn(LoopbackStandIn):
    name = "openai-moderation-stand-in"

    def __init__(self, *, api_key: str = "sk-stand-in") -> None:
        super().__init__()
        self.api_key = api_key
        self.scores: dict[str, dict[str, float]] = {}
        self.image_scores: dict[str, float] = {}
        self.images: list[bytes] = []

    @property
    def base_url(self) -> str:
        """What the adapter takes as ``base_url`` (OPENAI_MODERATION_BASE_URL)."""
        return f"{self.url}/v1"

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply({"error": {"message": message, "type": "server_error"}}, status, headers)

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if (request.method, request.path) != ("POST", PATH):
            return self.error_reply(404, "Not Found", {})
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return self.error_reply(401, "Incorrect API key provided", {})
        if isinstance(fault, Malformed):
            return Reply(200, b'{"results": [{"flagged": tr', "application/json")
        body = request.json()
        scores = dict.fromkeys(CATEGORIES, 0.0001)
        texts, images = _parts(body.get("input"))
        if body.get("model") is None or (not texts and not images):
            return self.error_reply(400, "input is required", {})
        for text in texts:
            for word, categories in self.scores.items():
                if word in text.lower():
                    scores.update(categories)
        if images:
            scores.update(self.image_scores)
        return json_reply(
            {
                "id": f"modr-{uuid.uuid4().hex}",
                "model": body["model"],
                "results": [
                    {
                        "flagged": any(s > 0.5 for s in scores.values()),
                        "categories": {c: s > 0.5 for c, s in scores.items()},
                        "category_scores": scores,
                    }
                ],
            }
        )


def _parts(value: Any) -> tuple[list[str], list[str]]:
    if isinstance(value, str):
        return [value], []
    texts: list[str] = []
    images: list[str] = []
    for part in value if isinstance(value, list) else []:
        if isinstance(part, str):
            texts.append(part)
        elif part.get("type") == "text":
            texts.append(part["text"])
        elif part.get("type") == "image_url":
            url = part["image_url"]["url"]
            images.append(url)
            base64.b64decode(url.split(",", 1)[1])  # a data URL, or the test fails loudly
    return texts, images
