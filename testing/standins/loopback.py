"""A tiny HTTP server on 127.0.0.1 for stand-ins: raw ASGI under uvicorn, in a thread.

A stand-in subclasses ``LoopbackStandIn`` and implements ``handle``. Every request is
recorded (``requests``); faults injected with ``inject`` answer the next matching
requests instead of ``handle``: ``Fail`` (a status, 500 by default), ``RateLimit``
(429 with ``Retry-After``), ``Stall`` (no answer for a while: the client times out).
Other ``Fault`` subclasses are passed to ``handle`` for the stand-in to act out.

Usage::

    with SomeStandIn() as standin:        # or standin.start() / standin.stop()
        httpx.get(standin.url + "/...")
"""

from __future__ import annotations

import abc
import asyncio
import json
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

import uvicorn


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), "application/json", headers or {})


class Fault:
    """Base of the failures a stand-in can be told to act out."""


@dataclass(frozen=True)
class Fail(Fault):
    status: int = 500
    message: str = "Internal Server Error"


@dataclass(frozen=True)
class RateLimit(Fault):
    retry_after: float | None = 0


@dataclass(frozen=True)
class Stall(Fault):
    """Hold the request this long (then answer normally, to nobody)."""

    seconds: float = 5.0


@dataclass
class _Injected:
    fault: Fault
    times: int
    when: Callable[[Request], bool] | None


async def read_body(receive: Any) -> bytes:
    """An ASGI request's whole body."""
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


class LoopbackStandIn(abc.ABC):
    name = "stand-in"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._faults: list[_Injected] = []
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.url = ""

    # -- knobs ------------------------------------------------------------------------

    def inject(
        self, fault: Fault, *, times: int = 1, when: Callable[[Request], bool] | None = None
    ) -> None:
        """Answer the next ``times`` requests (those ``when`` accepts) with ``fault``."""
        with self._lock:
            self._faults.append(_Injected(fault, times, when))

    def reset(self) -> None:
        """Forget faults and recorded requests (state a subclass keeps stays)."""
        with self._lock:
            self._faults.clear()
            self.requests.clear()

    def _take_fault(self, request: Request) -> Fault | None:
        with self._lock:
            for injected in self._faults:
                if injected.when is None or injected.when(request):
                    injected.times -= 1
                    if injected.times <= 0:
                        self._faults.remove(injected)
                    return injected.fault
        return None

    # -- to implement -------------------------------------------------------------------

    @abc.abstractmethod
    async def handle(self, request: Request, fault: Fault | None) -> Reply:
        """Answer one request (``fault`` is the injected fault, if any)."""

    def error_reply(self, status: int, message: str, headers: dict[str, str]) -> Reply:
        """How this service shapes an error answer (for Fail and RateLimit)."""
        return json_reply({"message": message}, status, headers)

    # -- serving ------------------------------------------------------------------------

    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True, name=self.name
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        request = Request(
            method=scope["method"],
            path=scope["path"],
            query=dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode())),
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
        )
        with self._lock:
            self.requests.append(request)
        reply = await self._respond(request)
        headers = [(b"content-type", reply.content_type.encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body})

    async def _respond(self, request: Request) -> Reply:
        fault = self._take_fault(request)
        if isinstance(fault, Fail):
            return self.error_reply(fault.status, fault.message, {})
        if isinstance(fault, RateLimit):
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after}"}
            return self.error_reply(429, "Rate limit exceeded", headers)
        if isinstance(fault, Stall):
            deadline = time.monotonic() + fault.seconds
            # polls a threading.Event: stop() runs in another thread and loop
            while time.monotonic() < deadline and not self._stopping.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            fault = None
        try:
            return await self.handle(request, fault)
        except Exception as exc:  # a stand-in bug shows up as a 500 with its reason
            return self.error_reply(500, f"stand-in error: {exc!r}", {})
