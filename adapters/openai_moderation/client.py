"""OpenAI's moderation endpoint: ``POST {base_url}/moderations``.

Request: ``{"model": "omni-moderation-latest", "input": ...}`` with ``Authorization:
Bearer <OPENAI_API_KEY>``; a text is sent as the input string, an image as a list
holding one ``{"type": "image_url", "image_url": {"url": "data:<type>;base64,..."}}``
part. Answer: ``{"id", "model", "results": [{"flagged", "categories": {name: bool},
"category_scores": {name: float}, ...}]}``; errors as ``{"error": {"message", ...}}``
with their HTTP status.

The category scores become labels (the highest score of a reason's categories):
``sexual/minors`` -> sexual_minors, ``sexual``, ``violence/graphic``, ``hate``(+
``/threatening``), ``self-harm``(+ ``/intent``, ``/instructions``), ``harassment``(+
``/threatening``), ``illicit``(+ ``/violent``) -> illegal. Plain ``violence`` is not
mapped: a battle scene is not refused for it. One try, bounded by ``timeout``: any
failure is ModerationUnavailable (the layers before it still decided).
"""

from __future__ import annotations

import base64

import httpx
import msgspec

from genstudio.core.model.moderation import Classification, Label, Reason, Surface
from genstudio.ports.moderation import ModerationUnavailable

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "omni-moderation-latest"
MAX_IMAGE_BYTES = 20 * 1024 * 1024

CATEGORIES: dict[str, Reason] = {
    "sexual/minors": Reason.SEXUAL_MINORS,
    "sexual": Reason.SEXUAL,
    "violence/graphic": Reason.VIOLENCE_GRAPHIC,
    "hate": Reason.HATE,
    "hate/threatening": Reason.HATE,
    "self-harm": Reason.SELF_HARM,
    "self-harm/intent": Reason.SELF_HARM,
    "self-harm/instructions": Reason.SELF_HARM,
    "harassment": Reason.HARASSMENT,
    "harassment/threatening": Reason.HARASSMENT,
    "illicit": Reason.ILLEGAL,
    "illicit/violent": Reason.ILLEGAL,
}


class _Result(msgspec.Struct):
    category_scores: dict[str, float | None] = {}
    flagged: bool = False


class _Answer(msgspec.Struct):
    results: list[_Result]


_ANSWER = msgspec.json.Decoder(_Answer)


class OpenAIModerationClassifier:
    name = "openai"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        model: str = DEFAULT_MODEL,
        timeout: float = 3.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/moderations"
        self.model = model
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return await self._moderate(text)

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        if len(data) > MAX_IMAGE_BYTES:
            raise ModerationUnavailable("the image is too large for the moderation service")
        url = f"data:{content_type};base64,{base64.b64encode(data).decode()}"
        return await self._moderate([{"type": "image_url", "image_url": {"url": url}}])

    async def _moderate(self, payload: object) -> Classification:
        try:
            response = await self._client.post(
                self.url,
                json={"model": self.model, "input": payload},
                headers=self._headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise ModerationUnavailable(f"the moderation service failed: {exc!r}") from exc
        if response.status_code != 200:
            raise ModerationUnavailable(f"the moderation service answered {response.status_code}")
        try:
            answer = _ANSWER.decode(response.content)
        except msgspec.DecodeError as exc:
            raise ModerationUnavailable("the moderation service's answer is malformed") from exc
        if not answer.results:
            raise ModerationUnavailable("the moderation service answered no result")
        return Classification(_labels(answer.results[0], self.name))


def _labels(result: _Result, source: str) -> tuple[Label, ...]:
    best: dict[Reason, float] = {}
    for category, score in result.category_scores.items():
        reason = CATEGORIES.get(category)
        if reason is not None and score is not None:
            best[reason] = max(best.get(reason, 0.0), min(1.0, max(0.0, float(score))))
    return tuple(Label(reason, score, source) for reason, score in best.items())
