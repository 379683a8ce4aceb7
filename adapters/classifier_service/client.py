"""The ``Classifier`` port over ``genstudio classifier`` (``wire.py`` has the protocol).

Why a service: NudeNet's ONNX detector costs a process ~75-130 MiB (onnxruntime's
library paged in, the session's buffers) whatever the load. With
``GENSTUDIO_CLASSIFIER_URL`` set, API processes and workers ask one classifier
process per host instead of each loading the model (docs/performance.md, "Worker
memory"). Texts are not sent: the service sees images only.

Labels name this client as their source (the contract's rule: the logs say which
layer saw what); the model inside the service is named by its ``/health/ready``.
One try per image, bounded by ``timeout``; anything but a 200 with a well-formed
verdict is ModerationUnavailable, as a local classifier's failure is (the policy's
``fail_closed`` decides what that means).
"""

from __future__ import annotations

import httpx
import msgspec

from genstudio.adapters.classifier_service.wire import (
    CLASSIFY_IMAGE_PATH,
    SURFACE_HEADER,
    WireVerdict,
)
from genstudio.core.model.moderation import Classification, Label, Reason, Surface
from genstudio.ports.moderation import ModerationUnavailable, UnreadableImage

_VERDICT = msgspec.json.Decoder(WireVerdict)


class ClassifierServiceClient:
    name = "classifier-service"

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + CLASSIFY_IMAGE_PATH
        self.timeout = timeout
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def classify_text(self, text: str, surface: Surface) -> Classification:
        return Classification()  # images only

    async def classify_image(
        self, data: bytes, content_type: str, surface: Surface
    ) -> Classification:
        headers = {"Content-Type": content_type, SURFACE_HEADER: surface.value, **self._auth}
        try:
            response = await self._client.post(
                self.url, content=data, headers=headers, timeout=self.timeout
            )
        except httpx.HTTPError as exc:
            raise ModerationUnavailable(f"the classifier service failed: {exc!r}") from exc
        if response.status_code in (413, 422):  # the service could not read the image
            raise UnreadableImage(f"the classifier service: {_detail(response)}")
        if response.status_code != 200:
            raise ModerationUnavailable(
                f"the classifier service answered {response.status_code}: {_detail(response)}"
            )
        try:
            verdict = _VERDICT.decode(response.content)
            labels = tuple(
                Label(Reason(label.reason), min(1.0, max(0.0, label.score)), self.name)
                for label in verdict.labels
            )
        except (msgspec.DecodeError, ValueError) as exc:
            raise ModerationUnavailable("the classifier service's answer is malformed") from exc
        return Classification(labels)


def _detail(response: httpx.Response) -> str:
    """The problem's detail (or title) for the log, else the body's start."""
    try:
        problem = msgspec.json.decode(response.content, type=dict[str, object])
    except msgspec.DecodeError:
        return response.text[:200]
    return str(problem.get("detail") or problem.get("title") or "")[:200]
