"""``GET /metrics`` (Prometheus' text format; unversioned, no token: keep it off the
public internet, docs/operations.md) and the request metrics of every answer.

Request metrics come from a raw ASGI middleware around the whole app (``install``),
like the access log: it sees every answer, a 404 of no route and the deadline's 503
included, and labels it with the matched route's template (``/v1/generate/{job_id}``),
never the raw path. A scrape then reads what Postgres and Redis know now
(``core/services/monitoring.py``), bounded: a database that does not answer within
``SNAPSHOT_TIMEOUT`` gives ``genstudio_queue_stats_up 0`` and the rest is served.
"""

from __future__ import annotations

import asyncio
import time

from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from genstudio.adapters.prometheus import CONTENT_TYPE, observe_request, render
from genstudio.core.services.monitoring import QueueSnapshot, queue_snapshot
from genstudio.entrypoints.http.deps import (
    ClockDep,
    QueueInspectorDep,
    SettingsDep,
    UowFactoryDep,
)
from genstudio.entrypoints.observability import record_breakers
from genstudio.entrypoints.settings import Settings

#: seconds a scrape waits for Postgres and Redis
SNAPSHOT_TIMEOUT = 2.0
#: snapshots given up on, kept referenced until they have unwound
_abandoned: set[asyncio.Future[QueueSnapshot]] = set()


class RequestMetrics:
    """ASGI middleware: one observation per HTTP answer (see the module's docstring)."""

    __slots__ = ("app",)

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except BaseException:
            status = status or 500
            raise
        finally:
            observe_request(
                scope["method"],
                scope.get("path_template") or None,  # set by the router once it matched
                status,
                time.perf_counter() - started,
            )


def instrument(app: Litestar, settings: Settings) -> None:
    """Wrap ``app``'s whole ASGI handler with the request metrics, and with Sentry's
    middleware when ``SENTRY_DSN`` is set (imported only then)."""
    app.asgi_handler = RequestMetrics(app.asgi_handler)
    if settings.observability.sentry_dsn:
        from genstudio.entrypoints import error_tracking

        error_tracking.init_error_tracking(settings.observability, process="api")
        error_tracking.wrap(app)


async def _snapshot(
    uow_factory: UowFactoryDep, clock: ClockDep, queue_inspector: QueueInspectorDep
) -> QueueSnapshot:
    task = asyncio.ensure_future(queue_snapshot(uow_factory, clock, queue_inspector))
    done, _ = await asyncio.wait([task], timeout=SNAPSHOT_TIMEOUT)
    if task in done:
        return task.result()
    task.cancel()  # it finishes unwinding in the background (psycopg's cancel can take seconds)
    _abandoned.add(task)
    task.add_done_callback(_abandoned.discard)
    return QueueSnapshot(stats_error="TimeoutError: the database did not answer in time")


@get(
    "/metrics",
    include_in_schema=False,
    opt={"rate_limit": None},  # scraped every few seconds: not a client's request
)
async def metrics(
    state: State,
    settings: SettingsDep,
    uow_factory: UowFactoryDep,
    clock: ClockDep,
    queue_inspector: QueueInspectorDep,
) -> Response[bytes]:
    """This process's metrics (every process's in multiprocess mode) and the queue's
    state now. A process that runs jobs (the embedded default's in-process worker)
    reads its breakers first."""
    runtime = getattr(state, "runtime", None)
    if runtime is not None and runtime.worker is not None:
        container = runtime.container
        record_breakers(container.router(), clock, container.metrics())
    snapshot = await _snapshot(uow_factory, clock, queue_inspector)
    body = render(snapshot, multiprocess_dir=settings.observability.prometheus_multiproc_dir)
    return Response(body, media_type=CONTENT_TYPE)
