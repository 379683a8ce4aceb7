"""What ``genstudio classifier`` and its client say to each other.

``POST /v1/classify/image`` with the image's bytes as the body (``Content-Type``
``image/png``, ``image/jpeg`` or ``image/webp``), the surface it was met on in
``X-Genstudio-Surface`` (``output``, ``avatar``, …) and ``Authorization: Bearer
<GENSTUDIO_CLASSIFIER_TOKEN>`` when the service has a token. Answer 200::

    {"labels": [{"reason": "sexual", "score": 0.93, "source": "nudenet"}]}

(no label: nothing seen). Errors are ``application/problem+json``: 401 (token), 413
(body over the service's limit), 415 (not an image type), 422 (bytes that are not a
decodable image), 503 (the model cannot answer). ``GET /health/live`` and ``GET
/health/ready`` (``{"status": "ok", "classifier": "nudenet", "classified": N}``; the
port answers only once the model is loaded) for the orchestrator.
"""

from __future__ import annotations

import msgspec

CLASSIFY_IMAGE_PATH = "/v1/classify/image"
SURFACE_HEADER = "X-Genstudio-Surface"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp"})


class WireLabel(msgspec.Struct, frozen=True):
    reason: str
    score: float
    source: str


class WireVerdict(msgspec.Struct, frozen=True):
    labels: list[WireLabel] = []
