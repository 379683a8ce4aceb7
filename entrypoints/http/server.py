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


class CorkedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a :class:`CorkedTransport`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        # after uvicorn kept the real one for flow control and the peer's address
        self.transport = CorkedTransport(self.transport, self.loop)  # type: ignore[assignment]
