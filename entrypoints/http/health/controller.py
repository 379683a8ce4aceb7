"""Liveness and readiness. Readiness checks Postgres (and Redis when configured) with
short timeouts, so a dead dependency answers 503 quickly instead of hanging."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from sqlalchemy import text

from entrypoints.http.deps import RuntimeDep
from entrypoints.http.health.schemas import Health

CHECK_TIMEOUT = 2.0
#: probes cancelled on timeout, kept referenced until they have unwound
_abandoned: set[asyncio.Future[None]] = set()


@get("/health/live", tags=["health"], summary="The process is up")
async def live() -> Health:
    return Health(status="ok")


async def _postgres(runtime: RuntimeDep) -> None:
    async with runtime.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _redis(runtime: RuntimeDep) -> None:
    from redis.asyncio import Redis

    assert runtime.settings.redis_url is not None
    client = Redis.from_url(runtime.settings.redis_url, socket_connect_timeout=CHECK_TIMEOUT)
    try:
        await client.ping()
    finally:
        await client.aclose()


@get("/health/ready", tags=["health"], summary="Postgres (and Redis) answer")
async def ready(runtime: RuntimeDep) -> Response[Health]:
    checks: dict[str, str] = {}
    probes = {"postgres": _postgres}
    if runtime.settings.redis_url:
        probes["redis"] = _redis
    # all at once, and not waiting for a stalled probe to unwind: cancelling a query
    # on a server that does not answer takes psycopg up to 10 s (its cancel request,
    # then a wait), which made this answer take 12-14 s
    tasks = {name: asyncio.ensure_future(probe(runtime)) for name, probe in probes.items()}
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
