"""Liveness and readiness. Readiness checks Postgres (and Redis when configured) with
short timeouts, so a dead dependency answers 503 quickly instead of hanging."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from litestar import Response, get
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from genstudio.entrypoints.http.deps import EngineDep, RedisDep
from genstudio.entrypoints.http.health.schemas import Health

CHECK_TIMEOUT = 2.0
#: probes cancelled on timeout, kept referenced until they have unwound
_abandoned: set[asyncio.Future[None]] = set()


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> Health:
    return Health(status="ok")


async def _postgres(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(redis: Redis) -> None:
    await redis.ping()


@get("/health/ready", tags=["health"], summary="Postgres (and Redis) answer")
async def ready(engine: EngineDep, redis: RedisDep) -> Response[Health]:
    checks: dict[str, str] = {}
    probes: dict[str, Coroutine[Any, Any, None]] = {"postgres": _postgres(engine)}
    if redis is not None:
        probes["redis"] = _redis(redis)
    # all at once, and not waiting for a stalled probe to unwind: cancelling a query
    # on a server that does not answer takes psycopg up to 10 s (its cancel request,
    # then a wait), which made this answer take 12-14 s
    tasks = {name: asyncio.ensure_future(probe) for name, probe in probes.items()}
    await asyncio.wait(tasks.values(), timeout=CHECK_TIMEOUT)
    for name, task in tasks.items():
        if not task.done():
            task.cancel()  # it finishes unwinding in the background
            _abandoned.add(task)
            task.add_done_callback(_abandoned.discard)
            checks[name] = "down: TimeoutError"
        elif (exc := task.exception()) is not None:  # any failure means not ready
            checks[name] = f"down: {type(exc).__name__}"
        else:
            checks[name] = "ok"
    ok = all(v == "ok" for v in checks.values())
    return Response(
        Health(status="ok" if ok else "unavailable", checks=checks),
        status_code=200 if ok else 503,
        headers={} if ok else {"Retry-After": "5"},
    )
