"""A closed-loop HTTP load generator (httpx, keep-alive), for machines without ``wrk``.

Run as its own process so it does not share a GIL with the orchestrator::

    python -m bench.loadgen --url http://127.0.0.1:8000 --concurrency 16 --duration 8 \
        --tokens tokens.txt --prefix run1

Prints one line ``BENCH_JSON {...}`` shaped like bench/submit.lua's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path

import httpx

BODY = b'{"model":"flux-schnell","prompt":"a lighthouse at dusk","width":512,"height":512}'


async def run(
    url: str, concurrency: int, duration: float, tokens: list[str], prefix: str
) -> dict[str, int | list[int]]:
    latencies: list[float] = []
    errors = {"status_errors": 0, "read_errors": 0}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        start = time.perf_counter()
        stop_at = start + duration

        async def loop(worker: int) -> None:
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                headers = {
                    "Authorization": f"Bearer {random.choice(tokens)}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{prefix}-{worker}-{n}",
                }
                t0 = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/generate/image", content=BODY, headers=headers
                    )
                except httpx.HTTPError:
                    errors["read_errors"] += 1
                    continue
                latencies.append(time.perf_counter() - t0)
                if response.status_code >= 400:
                    errors["status_errors"] += 1

        await asyncio.gather(*(loop(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    n = len(latencies)
    grid = (
        [int(latencies[min(n - 1, int((i + 0.5) / 1000 * n))] * 1e6) for i in range(1000)]
        if n
        else []
    )
    return {
        "requests": n,
        "duration_us": int(elapsed * 1e6),
        "connect_errors": 0,
        "write_errors": 0,
        "timeouts": 0,
        "max_us": int(latencies[-1] * 1e6) if n else 0,
        "grid": grid,
        **errors,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--concurrency", type=int, required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--tokens", type=Path, required=True)
    p.add_argument("--prefix", required=True)
    a = p.parse_args()
    tokens = [t for t in a.tokens.read_text().split() if t]
    result = asyncio.run(run(a.url, a.concurrency, a.duration, tokens, a.prefix))
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
