"""A deadline on every request: answer 503 rather than hang.

A database or cache that is down is refused quickly (connect timeouts, the pool's
checkout timeout). One that *stalls* — a Postgres whose process is stopped or
swapped out, a network path that drops packets during a failover, a lock held by a
runaway transaction — accepts the bytes and never answers, and a request waiting on
it would hang until the client gives up. So each request has ``seconds`` to start its
response. When they run out the middleware answers
``503 application/problem+json`` with ``Retry-After`` at once and cancels the
request's task; its cancellation (psycopg asks the server to cancel the statement,
and closes the connection if that is not answered either; the pool replaces it)
finishes in the background, and anything the handler still sends is dropped.

Cancelling a request is safe for the same reason a crash is: every write is one
transaction, and a submission that did commit before the 503 is found again by its
``Idempotency-Key`` when the app retries (uploads made before it are deleted, or
swept by the reconciler).

The clock stops while the request waits for its own body (a phone uploading a photo
over a slow network is not the server hanging), and it is stopped for good once the
response has started (a long media download streams for as long as it takes).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from genstudio.entrypoints.http.problem_document import (
    PROBLEM_JSON,
    UNAVAILABLE_RETRY_AFTER,
    problem_body,
)

log = logging.getLogger("genstudio.http")


def _answer(path: str) -> tuple[Message, Message]:
    body = problem_body(
        503,
        "Service unavailable",
        "the request took too long: a backing service is not answering; "
        "retry shortly with the same Idempotency-Key",
        code="unavailable",
        instance=path,
    )
    start: Message = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(UNAVAILABLE_RETRY_AFTER).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body, "more_body": False}


class _Watch:
    """One request's clock: armed while the handler works, paused while it reads the
    body, disarmed when the response starts."""

    __slots__ = (
        "answering",
        "armed_at",
        "expired",
        "handle",
        "loop",
        "remaining",
        "scope",
        "send",
        "started",
        "task",
    )

    def __init__(self, seconds: float, scope: Scope, send: Send) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.scope = scope
        self.send = send
        self.remaining = seconds
        self.armed_at = 0.0
        self.handle: asyncio.TimerHandle | None = None
        self.started = False
        self.expired = False
        self.answering: asyncio.Task[None] | None = None

    def arm(self) -> None:
        if self.started or self.expired:
            return
        self.armed_at = self.loop.time()
        self.handle = self.loop.call_at(self.armed_at + self.remaining, self._expire)

    def pause(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
            self.remaining -= self.loop.time() - self.armed_at

    def _expire(self) -> None:
        self.handle = None
        if self.started or self.task is None:
            return
        self.expired = True
        log.warning(
            "request deadline passed: answered 503",
            extra={"method": self.scope.get("method"), "path": self.scope.get("path")},
        )
        self.answering = self.loop.create_task(self._answer())
        self.task.cancel()

    async def _answer(self) -> None:
        start, body = _answer(str(self.scope.get("path", "")))
        try:
            await self.send(start)
            await self.send(body)
        except Exception as exc:  # the client went away meanwhile
            log.debug("could not send the deadline's answer", extra={"error": str(exc)})


class Deadline:
    """ASGI middleware: see the module's docstring. ``seconds <= 0`` turns it off."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or self.seconds <= 0:
            await self.app(scope, receive, send)
            return
        watch = _Watch(self.seconds, scope, send)

        async def timed_receive() -> Any:
            watch.pause()
            try:
                return await receive()
            finally:
                watch.arm()

        async def guarded_send(message: Message) -> None:
            if watch.expired:
                return  # the deadline has answered this request
            if message["type"] == "http.response.start":
                watch.started = True
                watch.pause()
            await send(message)

        watch.arm()
        try:
            await self.app(scope, timed_receive, guarded_send)
        except BaseException as exc:
            if not watch.expired:
                raise
            # our own cancellation, or what the handler made of it: answered already
            if not isinstance(exc, asyncio.CancelledError):
                log.info(
                    "a request past its deadline ended with an error",
                    extra={"path": scope.get("path"), "error": f"{type(exc).__name__}: {exc}"},
                )
        finally:
            watch.pause()
        if watch.answering is not None:
            if watch.task is not None and watch.task.cancelling():
                watch.task.uncancel()  # the cancellation was ours, and is over
            await watch.answering
