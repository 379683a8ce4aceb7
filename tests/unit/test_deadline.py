"""The request deadline: a 503 at once when a handler hangs, never a cut-off upload or
download, and the hung handler cancelled."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from genstudio.entrypoints.http.deadline import Deadline

Message = dict[str, Any]


class Recorder:
    """An ASGI ``send`` that notes when each message came."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.messages: list[tuple[float, Message]] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append((self.loop.time() - self.t0, message))

    def status(self) -> int:
        starts = [m for _, m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return int(starts[0]["status"])

    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for _, m in self.messages if m["type"] == "http.response.body"
        )

    def headers(self) -> dict[bytes, bytes]:
        start = next(m for _, m in self.messages if m["type"] == "http.response.start")
        return dict(start["headers"])


def scope(method: str = "GET", path: str = "/v1/me") -> Message:
    return {"type": "http", "method": method, "path": path, "headers": []}


async def no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def answer(send: Any, status: int = 200, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def test_a_hung_handler_gets_a_503_problem_at_the_deadline_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hung(scope: Message, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()  # a database that never answers
        except asyncio.CancelledError:
            cancelled.set()
            raise

    send = Recorder()
    await Deadline(hung, 0.2)(scope(), no_body, send)  # type: ignore[arg-type]

    assert send.status() == 503
    assert send.headers()[b"retry-after"] == b"5"
    assert send.headers()[b"content-type"] == b"application/problem+json"
    problem = json.loads(send.body())
    assert problem["code"] == "unavailable" and problem["instance"] == "/v1/me"
    assert int(send.headers()[b"content-length"]) == len(send.body())
    assert 0.2 <= send.messages[0][0] < 1.0
    assert cancelled.is_set()
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the cancellation was taken back


async def test_the_503_does_not_wait_for_a_slow_cancellation_and_later_sends_are_dropped() -> None:
    cleaned = asyncio.Event()

    async def slow_to_cancel(scope: Message, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0.5)  # psycopg asking the server to cancel, bounded
            cleaned.set()
            await answer(send, 500, b"too late")  # an error handler's answer
            raise

    send = Recorder()
    await Deadline(slow_to_cancel, 0.1)(scope(), no_body, send)  # type: ignore[arg-type]

    assert cleaned.is_set()
    assert send.status() == 503  # only the deadline's answer went out
    assert send.messages[-1][0] < 0.45, "the 503 left before the handler's cleanup ended"


async def test_an_error_after_the_deadline_is_not_raised_again() -> None:
    async def fails_when_cancelled(scope: Message, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("connection closed") from None

    send = Recorder()
    await Deadline(fails_when_cancelled, 0.1)(scope(), no_body, send)  # type: ignore[arg-type]
    assert send.status() == 503


async def test_waiting_for_the_client_s_body_does_not_count() -> None:
    chunks = [b"a" * 10, b"b" * 10, b"c" * 10]

    async def slow_upload() -> Message:
        await asyncio.sleep(0.15)  # a phone on a slow network
        chunk = chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def reads_body(scope: Message, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await asyncio.sleep(0.1)  # the handler's own work: within the deadline
        await answer(send, 200, body)

    send = Recorder()
    await Deadline(reads_body, 0.2)(scope("POST"), slow_upload, send)  # type: ignore[arg-type]
    assert send.status() == 200
    assert send.body() == b"a" * 10 + b"b" * 10 + b"c" * 10


async def test_the_handler_s_own_time_is_summed_around_body_reads() -> None:
    parts = [b"x", b"y"]

    async def receive() -> Message:
        chunk = parts.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(parts)}

    async def works_between_reads(scope: Message, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.12)
        await receive()
        await asyncio.sleep(0.12)  # 0.24 s of its own in all: past 0.2
        await receive()
        await answer(send)

    send = Recorder()
    await Deadline(works_between_reads, 0.2)(scope("POST"), receive, send)  # type: ignore[arg-type]
    assert send.status() == 503


async def test_a_response_that_has_started_streams_past_the_deadline() -> None:
    async def download(scope: Message, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(4):
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": i < 3})

    send = Recorder()
    await Deadline(download, 0.15)(scope(), no_body, send)  # type: ignore[arg-type]
    assert send.status() == 200
    assert send.body() == b"0123"


async def test_a_quick_request_is_untouched_and_a_zero_deadline_turns_it_off() -> None:
    async def quick(scope: Message, receive: Any, send: Any) -> None:
        await answer(send, 201, b"made")

    for seconds in (5.0, 0.0):
        send = Recorder()
        await Deadline(quick, seconds)(scope("POST"), no_body, send)  # type: ignore[arg-type]
        assert send.status() == 201 and send.body() == b"made"

    async def slow(scope: Message, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.15)
        await answer(send)

    send = Recorder()
    await Deadline(slow, 0.0)(scope(), no_body, send)  # type: ignore[arg-type]
    assert send.status() == 200


async def test_a_cancellation_that_is_not_the_deadline_s_goes_through() -> None:
    async def hung(scope: Message, receive: Any, send: Any) -> None:
        await asyncio.Event().wait()

    send = Recorder()
    task = asyncio.create_task(Deadline(hung, 5.0)(scope(), no_body, send))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()  # the server shutting down
    try:
        await task
    except asyncio.CancelledError:
        pass
    else:
        raise AssertionError("the server's cancellation was swallowed")
    assert send.messages == []
