"""Uploads do not pile up in memory (issue #19): ``genstudio serve`` as a process,
many large multipart submissions at once, the server's resident memory watched."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import select
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genstudio.adapters.supabase.auth import mint_token
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

SECRET = "bounded-uploads-" + "u" * 32
MB = 1024 * 1024


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def service(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    tmp_path = tmp_path_factory.mktemp("bounded")
    svc = Service(
        {
            "DATABASE_URL": pg_url,
            "SUPABASE_JWT_SECRET": SECRET,
            "GENSTUDIO_DATA_DIR": str(tmp_path / "data"),
            # every upload gets past the rate limit: what bounds memory here is the
            # number of uploads read at once (GENSTUDIO_UPLOADS_IN_FLIGHT, default 4)
            "GENSTUDIO_RATE_SUBMISSIONS_FREE": "1000/60",
            "GENSTUDIO_RATE_SUBMISSIONS_IP": "1000/60",
        },
        tmp_path,
    )
    svc.start("api", "serve")
    try:
        svc.wait_ready()
        yield svc
    finally:
        svc.stop_all()


def test_finding_parallel_57_mb_uploads_of_a_user_without_credits_keep_memory_bounded(
    service: Service,
) -> None:
    """Finding: 24 parallel 57 MB requests from a 0-credit user took the server to
    1.5 GB (every body read whole into memory at once)."""
    pid = service.procs["api"].pid
    before = _rss_mb(pid)
    token = mint_token(SECRET, user_id=uuid.uuid4())
    picture = os.urandom(28 * MB + MB // 2)  # two of them: 57 MB a request
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb(pid))

    def upload() -> int:
        with httpx.Client(base_url=service.base, timeout=120) as client:
            return client.post(
                "/v1/generate/edit",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
                data={"model": "sdxl-inpaint", "prompt": "a red door"},
                files={"image": ("a.png", picture, "image/png"), "mask": ("m.png", picture)},
            ).status_code

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            statuses = list(pool.map(lambda _: upload(), range(24)))
    finally:
        done.set()
        watcher.join()
    assert all(s in (402, 413, 422) for s in statuses), statuses  # refused, none kept
    # generous: 24 bodies read at once took 1.5 GB; with 4 at a time it stays a fraction
    print("rss MB before", before, "peak", peak[0], statuses[:3])
    assert peak[0] - before < 700, (before, peak[0])


# --- read as they stream: refused before or while the body arrives ---------------------

BOUNDARY = "bounded-upload-boundary"


def _head(service: Service, token: str, length: int, route: str = "/v1/generate/edit") -> bytes:
    host = service.base.removeprefix("http://")
    return (
        f"POST {route} HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {token}\r\nIdempotency-Key: {uuid.uuid4()}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _form_start(image_size: int) -> tuple[bytes, bytes]:
    """The form's text parts and the image part's head; and its tail after the bytes."""
    texts = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("model", "sdxl-inpaint"), ("prompt", "a red door"))
    )
    image = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    return texts + image, f"\r\n--{BOUNDARY}--\r\n".encode()


def _answer(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_an_upload_without_credits_is_answered_402_before_any_of_its_body_is_sent(
    service: Service,
) -> None:
    token = mint_token(SECRET, user_id=uuid.uuid4())
    host, port = service.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(_head(service, token, 57 * MB))  # the head alone: no byte of the body
        answer = _answer(conn)
    assert answer.startswith(b"HTTP/1.1 402 "), answer[:200]
    assert b'"code":"insufficient_credits"' in answer


def test_a_part_over_its_limit_is_refused_413_while_the_rest_is_still_being_sent(
    service: Service,
) -> None:
    """A funded user's 59 MB picture: the answer (413 naming ``image``) comes once the
    part's limit (20 MB) arrived, while the rest is still unsent; the server's memory grows
    by about that limit, not by the body."""
    user = uuid.uuid4()
    service.cli("credits", "grant", str(user), "10")
    token = mint_token(SECRET, user_id=user)
    start, end = _form_start(59 * MB)
    length = len(start) + 59 * MB + len(end)
    pid = service.procs["api"].pid
    before = _rss_mb(pid)
    peak = before
    host, port = service.base.removeprefix("http://").split(":")
    sent = 0
    chunk = b"\0" * (256 * 1024)
    with socket.socket() as conn:
        # a small send buffer: what was sent is close to what the server received
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)
        conn.settimeout(10)
        conn.connect((host, int(port)))
        conn.sendall(_head(service, token, length) + start)
        conn.setblocking(False)
        answer = b""
        while sent < 59 * MB:
            readable, writable, _ = select.select([conn], [conn], [], 5)
            if readable:
                answer = conn.recv(65536)
                break
            if writable:
                with contextlib.suppress(BlockingIOError):
                    sent += conn.send(chunk)
            peak = max(peak, _rss_mb(pid))
        conn.setblocking(True)
        answer += _answer(conn) if answer and not answer.rstrip().endswith(b"}") else b""
    print("sent MB when answered", sent / MB, "rss before", before, "peak", peak)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b'"code":"too_large"' in answer and b'"field":"image"' in answer
    # refused once the part's limit arrived, not after the whole body: the client was still
    # sending. How far past the limit it got depends on the kernel's socket buffers and how
    # soon the busy server wrote its answer (20.6-21.7 MB here, 27.3 MB on a loaded CI
    # machine), so the bound is the body, not a tuned number; the memory bound below is
    # what shows the server kept no more than the limit.
    assert 20 * MB <= sent < 59 * MB, sent / MB
    assert peak - before < 80, (before, peak)


def test_parallel_over_limit_uploads_of_a_funded_user_keep_memory_bounded(
    service: Service,
) -> None:
    """24 parallel edits whose 28.5 MB picture is over the 20 MB limit: each refused 413
    naming ``image`` as it arrives, at most ``GENSTUDIO_UPLOADS_IN_FLIGHT`` (4) read at
    once, each keeping at most its limit; nothing spooled to disk."""
    user = uuid.uuid4()
    service.cli("credits", "grant", str(user), "10")
    token = mint_token(SECRET, user_id=user)
    pid = service.procs["api"].pid
    before = _rss_mb(pid)
    picture = os.urandom(28 * MB + MB // 2)
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_mb(pid))

    def upload() -> tuple[int, str | None]:
        with httpx.Client(base_url=service.base, timeout=120) as client:
            response = client.post(
                "/v1/generate/edit",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": str(uuid.uuid4())},
                data={"model": "sdxl-inpaint", "prompt": "a red door"},
                files={"image": ("a.png", picture, "image/png"), "mask": ("m.png", b"x")},
            )
            return response.status_code, response.json().get("field")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda _: upload(), range(24)))
    finally:
        done.set()
        watcher.join()
    print("rss MB before", before, "peak", peak[0])
    assert answers == [(413, "image")] * 24
    # 4 at once, 20 MB each at most, plus the parser's and the event loop's buffers
    assert peak[0] - before < 200, (before, peak[0])
