"""A stand-in of PostHog's capture API, written from PostHog's public API docs
("Capture" / "Batch" in the API reference):

- ``POST /batch/`` with ``{"api_key": ..., "batch": [event, ...]}`` (what the Python
  SDK sends), ``POST /capture/``, ``/e/`` and ``/i/v0/e/`` with one event
  (``{"api_key": ..., "event": ..., "distinct_id": ..., "properties": {...}}``) or a
  ``batch``. An event names its user as ``distinct_id`` at its top level or in its
  properties; ``timestamp`` and ``uuid`` are optional.
- The project key travels in the body (``api_key``; ``token`` in properties is also
  accepted): missing, 401 ``invalid_api_key`` unless it is the one configured.
- A body may be gzipped: ``Content-Encoding: gzip`` or ``?compression=gzip-js``.
- Accepted: 200 ``{"status": 1}``. Malformed: 400 with PostHog's error shape.

Every accepted event is kept (``events``, with the key it came with). Knobs: the
loopback's ``Fail`` (500 by default), ``RateLimit`` (429 with ``Retry-After``),
``Stall`` (no answer for a while: the client times out).
"""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

CAPTURE_PATHS = frozenset({"/batch", "/capture", "/e", "/i/v0/e", "/track", "/engage"})


class PostHogStandIn(LoopbackStandIn):
    name = "posthog-stand-in"

    def __init__(self, *, api_key: str = "phc_test") -> None:
        super().__init__()
        self.api_key = api_key
        self.events: list[dict[str, Any]] = []
        self.batches: list[int] = []  # events per accepted request, in order
        self._state = threading.Lock()

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply(
            {"type": "server_error", "code": "server_error", "detail": message}, status, headers
        )

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == name]

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if request.method != "POST" or request.path.rstrip("/") not in CAPTURE_PATHS:
            return _problem(404, "not_found", f"no route {request.method} {request.path}")
        try:
            raw = request.body
            if (
                request.headers.get("content-encoding") == "gzip"
                or request.query.get("compression") == "gzip-js"
            ):
                raw = gzip.decompress(raw)
            body = json.loads(raw)
        except (OSError, ValueError):
            return _problem(400, "invalid_payload", "Malformed request data")
        if not isinstance(body, dict):
            return _problem(400, "invalid_payload", "Malformed request data")
        events = body["batch"] if isinstance(body.get("batch"), list) else [body]
        key = body.get("api_key") or (events[0].get("properties") or {}).get("token")
        if key != self.api_key:
            return json_reply(
                {
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                    "detail": "Project API key invalid. You can find your project API key in"
                    " your PostHog project settings.",
                },
                401,
            )
        accepted = []
        for event in events:
            properties = event.get("properties") or {}
            distinct_id = event.get("distinct_id") or properties.get("distinct_id")
            if not isinstance(event.get("event"), str) or not distinct_id:
                return _problem(400, "invalid_payload", "Invalid payload: event or distinct_id")
            accepted.append({**event, "distinct_id": str(distinct_id), "api_key": key})
        with self._state:
            self.events.extend(accepted)
            self.batches.append(len(accepted))
        return json_reply({"status": 1})


def _problem(status: int, code: str, detail: str) -> Reply:
    return json_reply({"type": "validation_error", "code": code, "detail": detail}, status)
