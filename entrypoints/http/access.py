"""Request ids and the access log: one line per request, an ``X-Request-Id`` on every
response.

A raw ASGI middleware around the whole Litestar app (``install`` wraps
``app.asgi_handler``, outside Litestar's exception handling and routing), so it sees
every answer: a 404 for a route that does not exist, a 500, and the request
deadline's 503 (``entrypoints/http/deadline.py`` answers through the ``send`` this
wraps). Litestar's ``LoggingMiddleware`` is not used: it runs inside the router (no
line for an unknown route), and per request it extracts and serialises the request's
and response's headers, cookies and fields into dicts before logging them — a cost on
the benchmarked submission path (docs/performance.md) for data we do not want in a log
line. This one costs two clock reads, a scan of the request's headers, two
context variables and the log line itself: tens of microseconds a request, nearly all
of it the log record, its formatting and its write (``GENSTUDIO_LOG_LEVEL=WARNING``
leaves out the access lines of answers below 500, and that cost with them).

The request id is the client's ``X-Request-Id`` when it sends a sane one (1 to 128 of
``A-Z a-z 0-9 . _ : + / = -``), else a new random one. It is kept in
``entrypoints.logs.REQUEST_ID`` for the request's task (and the tasks it starts), so
every log line of the request carries it, and every problem+json body names it as
``requestId`` (``entrypoints/http/problems.py``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from genstudio.core.model.ids import new_id
from genstudio.entrypoints.logs import IN_MESSAGE, REQUEST_ID

log = logging.getLogger("genstudio.access")

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:+/=-]{1,128}")
_MESSAGE = "%s %s %s %.1fms"
_SAID = ("method", "route", "status", "duration_ms")  # the text line's message says these


class _Seen:
    """What the request's handler learnt that the access line reports."""

    __slots__ = ("user_id",)

    def __init__(self) -> None:
        self.user_id: str | None = None


_SEEN: ContextVar[_Seen | None] = ContextVar("genstudio_access_seen", default=None)


def note_user(user_id: uuid.UUID | str) -> None:
    """Record the authenticated user of the current request (for its access line)."""
    seen = _SEEN.get()
    if seen is not None:
        seen.user_id = str(user_id)


def request_id_from(headers: Any) -> str:
    """The client's ``X-Request-Id`` if it is sane, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if _SANE.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return new_id().hex


class AccessLog:
    """ASGI middleware: see the module's docstring."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(scope["headers"])
        id_token = REQUEST_ID.set(request_id)
        seen = _Seen()
        seen_token = _SEEN.set(seen)
        header = (HEADER, request_id.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            status = status or 500
            raise
        finally:
            level = logging.WARNING if status >= 500 else logging.INFO
            if log.isEnabledFor(level):
                elapsed = round((time.perf_counter() - started) * 1000, 1)
                route = scope.get("path_template") or scope["path"][:200]
                method = scope["method"]
                extra: dict[str, object] = {
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": elapsed,
                    "request_id": request_id,
                    IN_MESSAGE: _SAID,
                }
                if seen.user_id is not None:
                    extra["user_id"] = seen.user_id
                # the record made directly: no caller lookup (Logger.log's findCaller)
                args = (method, route, status or "-", elapsed)
                log.handle(
                    log.makeRecord(log.name, level, "", 0, _MESSAGE, args, None, extra=extra)
                )
            _SEEN.reset(seen_token)
            REQUEST_ID.reset(id_token)


def install(app: Litestar) -> Litestar:
    """Wrap ``app``'s whole ASGI handler (routing and error handling included)."""
    app.asgi_handler = AccessLog(app.asgi_handler)
    return app
