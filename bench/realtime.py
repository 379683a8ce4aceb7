"""Realtime fan-out: 1,000 WebSocket clients on one API process, events published by
another process through Redis (issue #18). Target: p99 from publish to client under
100 ms; the API process's RSS recorded.

- the API: ``genstudio serve`` (uvicorn, one process) on the machine's Postgres and
  Redis, in a database of its own (migrated here);
- the clients: this process, 1,000 ``websockets`` connections, one user each,
  authenticated by the ``Sec-WebSocket-Protocol`` header;
- the publisher: a separate process, ``RedisRealtime.publish`` as a worker's
  after-commit effect calls it (right after its commit), each payload stamped with
  ``time.time()`` at the call. Latency is the client's receive time minus that stamp
  (one machine, one clock).

Phases: steady (``--rate`` events a second to random users for ``--seconds``), then
bursts (one event to every user at once, ``--bursts`` times, a second apart).

    .venv/bin/python -m bench.realtime [--clients 1000] [--rate 200] [--seconds 10]
        [--bursts 5] [--out bench/results/...json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from websockets.asyncio.client import ClientConnection, connect

from genstudio.adapters.supabase.auth import mint_token
from genstudio.adapters.supabase.migrate import upgrade
from tests import servers

SECRET = "bench-realtime-" + "b" * 32
ROOT = Path(__file__).resolve().parents[1]

PUBLISHER = r"""
import asyncio, json, random, sys, time, uuid
from redis.asyncio import Redis
from genstudio.adapters.realtime import RedisRealtime
users = [uuid.UUID(u) for u in json.loads(sys.argv[1])]
rate, seconds, bursts = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
async def main():
    redis = Redis.from_url(sys.argv[5])
    rt = RedisRealtime(redis)
    sent = 0
    start = time.monotonic()
    n = int(rate * seconds)
    for i in range(n):  # steady: paced to the rate
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await rt.publish(random.choice(users), "job.updated", {"phase": "steady", "t": time.time()})
        sent += 1
    await asyncio.sleep(1)
    for _ in range(bursts):  # one event to every user at once
        for u in users:
            await rt.publish(u, "credits.changed", {"phase": "burst", "t": time.time()})
            sent += 1
        await asyncio.sleep(1)
    await rt.aclose()
    await redis.aclose()
    print(sent)
asyncio.run(main())
"""


def _rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _client(url: str, user: uuid.UUID, latencies: dict[str, list[float]]) -> ClientConnection:
    token = mint_token(SECRET, user_id=user)
    ws = await connect(
        url,
        subprotocols=["genstudio.v1", f"bearer.{token}"],  # type: ignore[list-item]
        ping_interval=None,
        open_timeout=60,
    )
    assert json.loads(await ws.recv())["type"] == "ready"

    async def read() -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] != "ping":
                data = message["data"]
                latencies[data["phase"]].append((time.time() - data["t"]) * 1000)

    asyncio.get_running_loop().create_task(read())
    return ws


async def run(args: argparse.Namespace) -> dict[str, Any]:
    redis_url = servers.redis_url()
    admin = f"{servers.pg_server()}/postgres"
    name = f"genstudio_bench_rt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = f"{servers.pg_server()}/{name}"
    upgrade(db)
    port = servers.free_port()
    env = {
        **os.environ,
        "DATABASE_URL": db,
        "REDIS_URL": redis_url,
        "SUPABASE_JWT_SECRET": SECRET,
        "PORT": str(port),
        "GENSTUDIO_RATE_LIMITS": "off",
        "GENSTUDIO_LOG_LEVEL": "WARNING",
    }
    api = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
        [sys.executable, "-m", "genstudio.entrypoints.cli", "serve"], env=env, cwd=ROOT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=1)  # noqa: ASYNC210 - before
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        rss_idle = _rss_kib(api.pid)
        users = [uuid.uuid4() for _ in range(args.clients)]
        latencies: dict[str, list[float]] = {"steady": [], "burst": []}
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        clients: list[ClientConnection] = []
        started = time.monotonic()
        for i in range(0, len(users), 100):  # 100 handshakes at a time
            clients += await asyncio.gather(
                *(_client(url, u, latencies) for u in users[i : i + 100])
            )
        connect_s = time.monotonic() - started
        rss_connected = _rss_kib(api.pid)
        publisher = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PUBLISHER,
            json.dumps([str(u) for u in users]),
            str(args.rate),
            str(args.seconds),
            str(args.bursts),
            redis_url,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await publisher.communicate()
        sent = int(out.decode().strip())
        await asyncio.sleep(2)  # the last burst's stragglers
        rss_after = _rss_kib(api.pid)
        for ws in clients:
            await ws.close()
    finally:
        api.terminate()
        api.wait(30)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    every = latencies["steady"] + latencies["burst"]
    summary = {
        phase: {
            "events": len(values),
            "p50_ms": round(_pct(values, 0.50), 2),
            "p95_ms": round(_pct(values, 0.95), 2),
            "p99_ms": round(_pct(values, 0.99), 2),
            "max_ms": round(max(values), 2) if values else None,
        }
        for phase, values in (*latencies.items(), ("all", every))
    }
    return {
        "benchmark": "realtime fan-out (bench/realtime.py)",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_before": os.getloadavg(),
        },
        "clients": args.clients,
        "connect_seconds": round(connect_s, 2),
        "steady_rate_per_s": args.rate,
        "steady_seconds": args.seconds,
        "bursts": args.bursts,
        "sent": sent,
        "received": len(every),
        "latency_publish_to_client": summary,
        "api_rss_kib": {"idle": rss_idle, "connected": rss_connected, "after": rss_after},
        "bench_process_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "target": "p99 < 100 ms",
        "met": _pct(every, 0.99) < 100 and len(every) == sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
