"""CPU per submission inside one process, without HTTP: ``python -m bench.inprocess``.

The submission benchmark (``bench.run``) measures the API processes' CPU per request
under a real load, but on this shared machine that moves by ±10% between runs, more
than most single changes to the request path. This one takes the sockets to the
client and the other processes out: it builds the app on a fresh database (the
machine's Postgres, Redis db 11) and drives it in-process, ``--concurrency``
submissions at a time, over windows of ``--requests`` submissions; for each window
it reads this process's CPU time (user and system). The minimum over the windows is
the least disturbed measurement.

``--mode app`` calls the ASGI app (Litestar, the auth, the controller and the core);
``--mode core`` calls ``core.services.generation.submit_image`` directly with the
app's own adapters; the difference is the HTTP framework's share.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.run import Lab, log, mint_tokens, seed_users, service_env, user_id

BODY = b'{"model":"flux-schnell","prompt":"a lighthouse at dusk","width":512,"height":512}'


async def drive(app: Any, args: argparse.Namespace) -> list[dict[str, float]]:
    from genstudio.core.model.idempotency import request_fingerprint
    from genstudio.core.model.job_params import ImageParams
    from genstudio.core.services.generation.submit import submit_image

    numbers = list(range(1, args.users + 1))
    tokens = mint_tokens(numbers)

    async def over_http() -> None:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer " + random.choice(tokens).encode()),
            (b"content-type", b"application/json"),
            (b"idempotency-key", f"inproc-{uuid.uuid4().hex}".encode()),
            (b"content-length", str(len(BODY)).encode()),
        ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/generate/image",
            "raw_path": b"/v1/generate/image",
            "root_path": "",
            "query_string": b"",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "headers": headers,
            "state": {},
        }
        messages = [{"type": "http.request", "body": BODY, "more_body": False}]
        statuses: list[int] = []

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        await app(scope, receive, send)
        if statuses != [202]:
            raise RuntimeError(f"the submission answered {statuses}")

    async def in_core() -> None:
        c = app.state.runtime.container
        result = await submit_image(
            c.uow_factory(),
            c.queue(),
            c.clock(),
            c.catalog(),
            user_id=user_id(random.choice(numbers)),
            email=None,
            model_id="flux-schnell",
            params=ImageParams(prompt="a lighthouse at dusk", width=512, height=512),
            idempotency_key=f"inproc-{uuid.uuid4().hex}",
            request_hash=request_fingerprint("POST", "/v1/generate/image", BODY),
        )
        if result.job is None or result.replayed:
            raise RuntimeError(f"the submission answered {result}")

    one = over_http if args.mode == "app" else in_core

    async def client(n: int) -> None:
        for _ in range(n):
            await one()

    each = max(1, args.requests // args.concurrency)
    windows = []
    async with app.lifespan():
        import gc

        gc.collect()
        gc.freeze()  # as ``genstudio serve`` does
        await asyncio.gather(*(client(max(1, each // 4)) for _ in range(args.concurrency)))
        for _ in range(args.windows):
            cpu, times = time.process_time(), os.times()
            await asyncio.gather(*(client(each) for _ in range(args.concurrency)))
            done = each * args.concurrency
            after = os.times()
            windows.append(
                {
                    "cpu_us": (time.process_time() - cpu) / done * 1e6,
                    "user_us": (after.user - times.user) / done * 1e6,
                    "system_us": (after.system - times.system) / done * 1e6,
                }
            )
    return windows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--mode", choices=["app", "core"], default="app")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=1000, help="submissions per window")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args(argv)

    import uvloop

    workdir = Path(tempfile.mkdtemp(prefix="genstudio-inproc-"))
    lab = Lab(workdir)
    try:
        url = lab.database("inproc")
        seed_users(url, list(range(1, args.users + 1)), 1_000_000)
        os.environ.update(service_env(url, workdir))
        from genstudio.entrypoints.http.app import create_app
        from genstudio.entrypoints.settings import Settings

        app = create_app(Settings.from_env())
        windows = uvloop.run(drive(app, args))
    finally:
        lab.close()
        shutil.rmtree(workdir, ignore_errors=True)
    cpu = sorted(w["cpu_us"] for w in windows)
    best = min(windows, key=lambda w: w["cpu_us"])
    log(
        f"mode={args.mode} concurrency={args.concurrency}: CPU per submission "
        f"min {cpu[0]:.0f} us (user {best['user_us']:.0f}, system {best['system_us']:.0f}), "
        f"median {statistics.median(cpu):.0f} us over {len(cpu)} windows"
    )


if __name__ == "__main__":
    main()
