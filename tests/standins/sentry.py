"""A stand-in of Sentry's ingestion endpoint (``POST /api/<project>/envelope/``),
written from Sentry's envelope documentation (develop.sentry.dev/sdk/envelopes/).

A DSN ``http://<key>@127.0.0.1:<port>/<project>`` points sentry-sdk here. It checks
what Sentry checks first (the ``X-Sentry-Auth`` header naming the DSN's public key,
or 401), undoes ``Content-Encoding`` (gzip, deflate, br), splits the envelope into
its items (a header line, then each item's header line and payload, of the header's
``length`` when given, else up to the next newline) and keeps them: ``events`` are
the ``event`` items' payloads as sent. Knobs: the loopback's ``Fail``/``RateLimit``/
``Stall``.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from typing import Any

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

try:  # sentry-sdk compresses with brotli when it is installed
    import brotli  # type: ignore[import-untyped]
except ImportError:  # pragma: no cover - then it sends gzip
    brotli = None

_ENVELOPE = re.compile(r"^/api/(\d+)/envelope/?$")
_KEY = re.compile(r"sentry_key=([^,\s]+)")


def parse_envelope(raw: bytes) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]:
    """An envelope's header and its items (item header, payload bytes)."""
    first, _, rest = raw.partition(b"\n")
    header = json.loads(first)
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        line, _, rest = rest.partition(b"\n")
        item_header = json.loads(line)
        length = item_header.get("length")
        if length is not None:
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return header, items


def _decoded(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        if brotli is None:
            raise ValueError("brotli is not installed")
        return bytes(brotli.decompress(body))
    return body


class SentryStandIn(LoopbackStandIn):
    name = "sentry-stand-in"

    def __init__(self, *, key: str = "public", project: str = "1") -> None:
        super().__init__()
        self.key = key
        self.project = project
        self.envelopes: list[tuple[dict[str, Any], list[tuple[dict[str, Any], bytes]]]] = []
        self._state = threading.Lock()

    def dsn(self) -> str:
        return self.url.replace("http://", f"http://{self.key}@") + f"/{self.project}"

    @property
    def events(self) -> list[dict[str, Any]]:
        with self._state:
            return [
                json.loads(payload)
                for _, items in self.envelopes
                for header, payload in items
                if header.get("type") == "event"
            ]

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        match = _ENVELOPE.match(request.path)
        if request.method != "POST" or match is None or match.group(1) != self.project:
            return json_reply({"detail": "not found"}, 404)
        auth = request.headers.get("x-sentry-auth", "")
        key = _KEY.search(auth)
        if key is None or key.group(1) != self.key:
            return json_reply({"detail": "bad sentry_key"}, 401)
        try:
            raw = _decoded(request.body, request.headers.get("content-encoding", ""))
            envelope = parse_envelope(raw)
        except (ValueError, OSError, json.JSONDecodeError) as exc:
            return json_reply({"detail": f"invalid envelope: {exc}"}, 400)
        with self._state:
            self.envelopes.append(envelope)
        return json_reply({"id": envelope[0].get("event_id")})
