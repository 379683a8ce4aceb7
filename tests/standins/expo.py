"""A stand-in of Expo's push API (``/--/api/v2/push/send`` and ``/getReceipts``),
written from Expo's documentation (see ``adapters/expo/client.py`` for the shapes).

It checks what Expo checks (at most 100 messages per request, 1,000 ids per receipts
request, a gzip body when ``Content-Encoding: gzip``, the access token when one is
required) and keeps every accepted message (``messages``). Knobs, besides the
loopback's ``Fail``/``RateLimit``/``Stall``:

- ``unregistered``: tokens whose tickets are ok but whose receipts say
  ``DeviceNotRegistered`` (the app was uninstalled after the token was handed out);
- ``refused``: token -> error code answered in its ticket (``DeviceNotRegistered``,
  ``MessageTooBig``, ``InvalidCredentials``, ...);
- ``rate_limited_messages``: the next N messages get ``MessageRateExceeded`` tickets;
- ``access_token``: when set, requests without ``Bearer <it>`` get 401;
- ``inject(Hang(seconds))``: the request is held and then answered 503, accepting
  nothing (a sender killed while it waits has sent nothing).
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any

from tests.standins.loopback import Fault, LoopbackStandIn, Reply, Request, json_reply

MAX_MESSAGES = 100
MAX_RECEIPT_IDS = 1000


@dataclass(frozen=True)
class Hang(Fault):
    """Hold the request ``seconds`` (or until the stand-in stops), then answer 503
    without accepting any of its messages."""

    seconds: float = 60.0


class ExpoStandIn(LoopbackStandIn):
    name = "expo-stand-in"

    def __init__(self, *, access_token: str | None = None) -> None:
        super().__init__()
        self.access_token = access_token
        self.messages: list[dict[str, Any]] = []
        self.unregistered: set[str] = set()
        self.refused: dict[str, str] = {}
        self.rate_limited_messages = 0
        self.receipts_asked: list[list[str]] = []
        self._tickets: dict[str, str] = {}  # ticket id -> token
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        return json_reply(
            {"errors": [{"code": "INTERNAL_SERVER_ERROR", "message": message}]}, status, headers
        )

    def _body(self, request: Request) -> Any:
        raw = request.body
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        return json.loads(raw)

    def to(self, token: str) -> list[dict[str, Any]]:
        """The messages accepted for one device."""
        return [m for m in self.messages if m["to"] == token]

    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        if self.access_token and request.headers.get("authorization") != (
            f"Bearer {self.access_token}"
        ):
            return json_reply(
                {"errors": [{"code": "UNAUTHORIZED", "message": "bad access token"}]}, 401
            )
        if isinstance(fault, Hang):
            waited = 0.0
            while waited < fault.seconds and not self._stopping.is_set():
                await asyncio.sleep(0.05)
                waited += 0.05
            return json_reply({"errors": [{"code": "UNAVAILABLE", "message": "hung"}]}, 503)
        if request.method != "POST":
            return json_reply({"errors": [{"code": "NOT_FOUND", "message": "no"}]}, 404)
        if request.path == "/--/api/v2/push/send":
            return self._send(self._body(request))
        if request.path == "/--/api/v2/push/getReceipts":
            return self._receipts(self._body(request))
        return json_reply({"errors": [{"code": "NOT_FOUND", "message": request.path}]}, 404)

    def _send(self, body: Any) -> Reply:
        messages = body if isinstance(body, list) else [body]
        if len(messages) > MAX_MESSAGES:
            return json_reply(
                {
                    "errors": [
                        {
                            "code": "PUSH_TOO_MANY_NOTIFICATIONS",
                            "message": f"more than {MAX_MESSAGES} messages",
                        }
                    ]
                },
                400,
            )
        tickets: list[dict[str, Any]] = []
        with self._state:
            for message in messages:
                token = message.get("to")
                if self.rate_limited_messages > 0:
                    self.rate_limited_messages -= 1
                    tickets.append(_error("MessageRateExceeded", "too many messages"))
                elif token in self.refused:
                    tickets.append(_error(self.refused[token], f"{token} refused"))
                else:
                    ticket_id = f"ticket-{next(self._ids)}"
                    self._tickets[ticket_id] = token
                    self.messages.append(message)
                    tickets.append({"status": "ok", "id": ticket_id})
        return json_reply({"data": tickets})

    def _receipts(self, body: Any) -> Reply:
        ids = list(body.get("ids", []))
        if len(ids) > MAX_RECEIPT_IDS:
            return json_reply(
                {"errors": [{"code": "PUSH_TOO_MANY_RECEIPTS", "message": "too many ids"}]}, 400
            )
        self.receipts_asked.append(ids)
        data: dict[str, Any] = {}
        with self._state:
            for ticket_id in ids:
                token = self._tickets.get(ticket_id)
                if token is None:
                    continue
                if token in self.unregistered:
                    data[ticket_id] = _error("DeviceNotRegistered", f"{token} is not registered")
                else:
                    data[ticket_id] = {"status": "ok"}
        return json_reply({"data": data})


def _error(code: str, message: str) -> dict[str, Any]:
    return {"status": "error", "message": message, "details": {"error": code}}
