"""Upload parts stream to disk, not memory (issue #19, entrypoints/http/forms.py): a
20 MB file part is read with a few hundred KB of Python memory at most, and comes
back whole, its digest that of what was sent."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, post
from litestar.testing import TestClient

from genstudio.entrypoints.http.forms import SPOOL_IN_MEMORY, FormSpec, read_form

SPEC = FormSpec.of(texts=("prompt",), files={"image": 30 * 1024 * 1024})


@post("/form", request_max_body_size=64 * 1024 * 1024)
async def _read(request: Request[Any, Any, Any]) -> dict[str, object]:
    tracemalloc.start()
    try:
        form = await read_form(request, SPEC)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image = form.files["image"]
    data = image.data  # read from the temporary file only now, after the form
    return {
        "peak": peak,
        "size": image.size,
        "digest": image.digest,
        "read": hashlib.sha256(data).hexdigest(),
        "prompt": form.texts["prompt"],
    }


class _Streaming:
    """What read_form takes of a Litestar request, the body arriving in 64 KB chunks
    as a real server hands them on (Litestar's test client hands the whole body over
    in one message, which would measure the client's buffer, not the reader's)."""

    def __init__(self, body: bytes, boundary: str) -> None:
        self.body = memoryview(body)
        self.content_type = ("multipart/form-data", {"boundary": boundary})

    async def stream(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), 64 * 1024):
            yield bytes(self.body[start : start + 64 * 1024])


def _multipart(boundary: str, payload: bytes) -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\n'
            "a lighthouse\r\n"
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
            'filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )


async def test_a_large_file_part_is_spooled_to_disk_and_comes_back_whole() -> None:
    payload = os.urandom(20 * 1024 * 1024)
    request = _Streaming(_multipart("b0undary", payload), "b0undary")
    tracemalloc.start()
    try:
        form = await read_form(request, SPEC)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    image = form.files["image"]
    sent = hashlib.sha256(payload).hexdigest()
    assert image.size == len(payload) and image.digest == sent
    assert image.content_type == "image/png" and form.texts["prompt"] == "a lighthouse"
    # what stayed in memory while the form was read: the spool's in-memory part and a
    # chunk or two, not the 20 MB (kept in memory, the peak would pass 20 MB)
    assert peak < SPOOL_IN_MEMORY + 1024 * 1024, peak
    assert hashlib.sha256(image.data).hexdigest() == sent  # read back whole, when asked


def test_a_small_file_part_stays_in_memory_and_reads_back() -> None:
    payload = b"\x89PNG" + os.urandom(1000)
    with TestClient(Litestar([_read])) as client:
        answer = client.post(
            "/form", files={"image": ("a.png", payload, "image/png")}, data={"prompt": "x"}
        )
    body = answer.json()
    assert body["size"] == len(payload)
    assert body["read"] == body["digest"] == hashlib.sha256(payload).hexdigest()
