"""uvicorn's HTTP protocol, with a response's writes sent together.

uvicorn (httptools) writes a response's status line and headers as soon as the app
sends ``http.response.start``, and its body as a second write on
``http.response.body``: two ``send`` calls per response, and the client woken twice
(its first read holds only the headers). Litestar sends the two messages in one step
of the event loop, so this protocol's transport keeps what is written in that step
and sends it in one ``writelines`` at the end of it (``loop.call_soon``): one system
call and one wake-up of the client per response instead of two
(tests/unit/test_http_server.py counts them).

Nothing waits longer than the current step of the loop; a streamed body (media) is
sent chunk by chunk as before, each chunk at the end of the step that wrote it.
Closing, or anything that needs the bytes on the wire (``write_eof``, an upgrade)
flushes first. Flow control is the real transport's: uvicorn's ``FlowControl`` was
given it before the swap, and ``get_write_buffer_size`` counts what is held here.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CorkedTransport:
    """A transport whose writes in one step of the event loop leave in one send."""

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        held, self._held = self._held, []
        if not held or self._transport.is_closing():
            return
        if len(held) == 1:
            self._transport.write(held[0])
        else:
            self._transport.writelines(held)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.flush()  # an upgrade: whatever was written goes first
        self._transport.set_protocol(protocol)

    def __getattr__(self, name: str) -> Any:  # is_closing, pause_reading, get_extra_info…
        return getattr(self._transport, name)


#: the most bytes a request's head (request line and headers) may have, and the most
#: header fields: nginx's default buffers hold 32 KiB; llhttp has no limit of its own
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100


def _too_large_response() -> bytes:
    body = (
        b'{"type":"https://genstudio.app/problems/headers-too-large",'
        b'"title":"Request Header Fields Too Large","status":431,'
        b'"detail":"the request line and headers may have at most %d bytes in %d fields",'
        b'"code":"headers_too_large"}' % (MAX_HEAD_BYTES, MAX_HEADERS)
    )
    return (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
    )


class _HeadTooLarge(Exception):
    pass


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CorkedTransport`, with the request
    head bounded: llhttp buffers a header of any size, so 50 MB of headers used to be
    read (and re-joined as it arrived) before the app could refuse them, four such
    requests stalling the event loop for seconds. A head larger than
    ``MAX_HEAD_BYTES``, or of more than ``MAX_HEADERS`` fields, is answered 431 and
    the connection closed as soon as that many bytes arrived."""

    _head_bytes = 0
    _head_fields = 0
    _head_done = False
    _head_refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # after uvicorn kept the real one for flow control and the peer's address
        self.transport = CorkedTransport(self.transport, self.loop)  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_done or self.transport.is_closing():
            return
        # the whole chunk was head (its end was not in it): a chunk that completes a
        # head is at most one read (256 KiB), so what is buffered stays bounded
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_refused = True
            self.send_400_response("")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._head_fields = 0
        self._head_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_fields += 1
        if self._head_fields > MAX_HEADERS:
            # raised through llhttp: uvicorn answers a parser error with send_400_response
            self._head_refused = True
            raise _HeadTooLarge
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_done = True
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._head_refused:
            super().send_400_response(msg)
            return
        self._head_done = True
        self.logger.warning("request head too large: refused with 431")
        self.transport.write(_too_large_response())
        self.transport.close()
