"""The HTTP protocol that sends a response's writes together (entrypoints/http/server.py).

Over a recording transport: what one step of the event loop writes leaves in one
call, closing never loses held bytes. Over a real uvicorn server on loopback, with
a system-call count: a JSON response is one send, a streamed body arrives whole,
and ``Connection: close`` answers are complete.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx
import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from genstudio.entrypoints.http.server import CorkedHttpToolsProtocol, CorkedTransport
from tests import servers
from tests.standins.loopback import read_body


class Recorder(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, list[bytes]]] = []
        self.closed = False
        self.protocol: Any = None

    def write(self, data: Any) -> None:
        self.calls.append(("write", [bytes(data)]))

    def writelines(self, list_of_data: Any) -> None:
        self.calls.append(("writelines", [bytes(d) for d in list_of_data]))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.calls.append(("close", []))
        self.closed = True

    def write_eof(self) -> None:
        self.calls.append(("eof", []))

    def get_write_buffer_size(self) -> int:
        return 7

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.calls.append(("protocol", []))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


async def test_writes_in_one_step_leave_in_one_call() -> None:
    raw = Recorder()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    corked.write(b"")  # nothing to send: no empty write
    corked.write(memoryview(b'{"a":1}'))
    assert raw.calls == []  # held until the step ends
    assert corked.get_write_buffer_size() == 7 + 19 + 7
    await asyncio.sleep(0)
    assert raw.calls == [("writelines", [b"HTTP/1.1 200 OK\r\n\r\n", b'{"a":1}'])]


async def test_each_step_flushes_its_own_writes() -> None:
    raw = Recorder()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"chunk 1")
    await asyncio.sleep(0)
    corked.writelines([b"chunk 2", b"chunk 3"])
    await asyncio.sleep(0)
    corked.write(b"chunk 4")
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # a step with nothing written sends nothing
    assert raw.calls == [
        ("write", [b"chunk 1"]),
        ("writelines", [b"chunk 2", b"chunk 3"]),
        ("write", [b"chunk 4"]),
    ]


async def test_close_eof_and_upgrade_send_what_is_held_first() -> None:
    loop = asyncio.get_running_loop()
    for finish, last in (("close", "close"), ("write_eof", "eof"), ("set_protocol", "protocol")):
        raw = Recorder()
        corked = CorkedTransport(raw, loop)
        corked.write(b"last words")
        if finish == "set_protocol":
            corked.set_protocol(asyncio.Protocol())
        else:
            getattr(corked, finish)()
        assert raw.calls == [("write", [b"last words"]), (last, [])]
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        assert len(raw.calls) == 2


async def test_nothing_is_written_to_a_closing_transport() -> None:
    raw = Recorder()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    corked.write(b"too late")
    raw.closed = True  # the peer went away in this step
    await asyncio.sleep(0)
    assert raw.calls == []


async def test_other_transport_methods_are_the_real_ones() -> None:
    raw = Recorder()
    corked = CorkedTransport(raw, asyncio.get_running_loop())
    assert corked.get_extra_info("peername") == ("127.0.0.1", 1)
    assert corked.is_closing() is False


# --- over a real server -----------------------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    body = await read_body(receive)
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(50):
            await send(
                {"type": "http.response.body", "body": bytes([65 + i % 26]) * 4096,
                 "more_body": True}
            )  # fmt: skip
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    payload = b'{"echo":' + str(len(body)).encode() + b"}"
    await send(
        {
            "type": "http.response.start",
            "status": 202,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class CountingTransport:
    """The real transport, counting the calls that send (each one a system call)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.sends = 0

    def write(self, data: Any) -> None:
        self.sends += 1
        self.transport.write(data)

    def writelines(self, lines: Any) -> None:
        self.sends += 1
        self.transport.writelines(lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


SENDS: list[CountingTransport] = []


class CountedCorked(CorkedHttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        SENDS.append(counting := CountingTransport(transport))
        # duck-typed: CountingTransport delegates everything but the sends to the real one
        super().connection_made(cast(asyncio.Transport, counting))


class CountedStock(HttpToolsProtocol):
    def connection_made(self, transport: Any) -> None:
        SENDS.append(counting := CountingTransport(transport))
        super().connection_made(counting)  # type: ignore[arg-type]


@contextmanager
def serving(protocol: type[asyncio.Protocol]) -> Iterator[str]:
    with servers.serving(app, http=protocol, lifespan="off") as url:
        yield url


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serving(CountedCorked) as url:
        yield url


def test_keep_alive_requests_get_whole_answers(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        for n in (0, 10, 100_000):
            r = client.post("/json", content=b"x" * n)
            assert r.status_code == 202
            assert r.json() == {"echo": n}


def test_a_streamed_body_arrives_whole_and_in_order(server: str) -> None:
    r = httpx.get(server + "/stream")
    assert r.status_code == 200
    assert r.content == b"".join(bytes([65 + i % 26]) * 4096 for i in range(50))


def test_an_answer_on_a_closing_connection_is_complete(server: str) -> None:
    # the server closes right after the body: what it held must leave before the close
    host, port = server.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 202")
    assert body == b'{"echo":3}'


def test_a_response_is_one_send() -> None:
    # uvicorn's own protocol sends the headers and the body apart (two system calls,
    # the client woken twice); this one sends each answer in one
    for protocol, per_answer in ((CountedStock, 2), (CountedCorked, 1)):
        SENDS.clear()
        with serving(protocol) as url, httpx.Client(base_url=url) as client:
            for n in range(20):
                r = client.post("/json", content=b"x" * n)
                assert r.json() == {"echo": n}
        [connection] = SENDS  # one keep-alive connection
        assert connection.sends == 20 * per_answer, protocol
