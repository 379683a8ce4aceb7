"""Opening and closing what every process needs: database, queue, container."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from taskiq import AsyncBroker

from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.adapters.redis import TaskiqJobQueue, make_stream_broker
from genstudio.adapters.supabase.db import make_engine
from genstudio.adapters.supabase.migrate import upgrade
from genstudio.entrypoints.analytics import close_analytics
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.embedded import embedded_postgres
from genstudio.entrypoints.inprocess import InProcessWorker
from genstudio.entrypoints.maintenance import store_maintenance
from genstudio.entrypoints.settings import Settings, resolve_secrets

log = logging.getLogger("genstudio")

#: seconds a call on the shared Redis client may take to connect, and to be answered
REDIS_TIMEOUT = 2.0


@dataclass
class Runtime:
    settings: Settings
    container: AppContainer
    engine: AsyncEngine
    broker: AsyncBroker | None
    worker: InProcessWorker | None


def open_redis(url: str) -> Redis:
    """The process's one Redis client (a pool of connections, made as needed), for
    everything but the queue's broker: health, queue stats, later rate limits and
    realtime. Bounded: a Redis that does not answer fails a call in seconds."""
    return Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)


@asynccontextmanager
async def database_url(settings: Settings) -> AsyncIterator[str]:
    """The configured DATABASE_URL, or the embedded server's (started and migrated),
    attached to for as long as the block runs (stopped after it if nobody else uses it)."""
    if settings.database.url is not None:
        yield settings.database.url
        return
    server = embedded_postgres(settings.server.data_dir)
    url = await asyncio.to_thread(server.__enter__)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await asyncio.to_thread(server.__exit__, None, None, None)


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    in_process_worker: bool = True,
    worker_process: bool = False,
    worker_kinds: list[str] | None = None,
    configure: Callable[[AppContainer], None] | None = None,
) -> AsyncIterator[Runtime]:
    """Everything a process needs. ``worker_process``: this is a taskiq worker (its
    receiver starts the broker); otherwise the broker only sends."""
    settings = resolve_secrets(settings)
    async with (
        database_url(settings) as url,
        _opened(settings, url, in_process_worker, worker_process, worker_kinds, configure) as rt,
    ):
        yield rt


@asynccontextmanager
async def _opened(
    settings: Settings,
    url: str,
    in_process_worker: bool,
    worker_process: bool,
    worker_kinds: list[str] | None,
    configure: Callable[[AppContainer], None] | None,
) -> AsyncIterator[Runtime]:
    engine = make_engine(
        url, pool_size=settings.database.pool_size, prepared=settings.database.prepared
    )
    broker, queue = _queue(settings, worker_process, worker_kinds)
    redis = open_redis(settings.redis.url) if settings.redis.url else None
    container = AppContainer(settings=settings, engine=engine, queue=queue, redis=redis)
    if configure is not None:
        configure(container)
    # built now: a MEDIA_STORAGE adapter short of its settings stops the process at start
    # (its factory's SystemExit), not the first request that stores or signs (issue #23)
    container.storage()
    worker = None
    try:
        if broker is not None and not broker.is_worker_process:
            await broker.startup()
        if isinstance(queue, InMemoryJobQueue) and in_process_worker:
            worker = _in_process_worker(settings, queue, container)
        yield Runtime(settings, container, engine, broker, worker)
    finally:
        if worker is not None:
            await worker.stop()
        await _close_clients(container)
        await close_analytics(container.analytics())  # sends what is queued (issue #20)
        try:
            await container.realtime().aclose()  # sends what is still queued
        except Exception:
            log.exception("closing realtime failed")
        if broker is not None:
            await broker.shutdown()
        if redis is not None:
            await redis.aclose()
        await engine.dispose()


def _queue(
    settings: Settings, worker_process: bool, worker_kinds: list[str] | None
) -> tuple[AsyncBroker | None, InMemoryJobQueue | TaskiqJobQueue]:
    """The Redis streams' broker and its queue with ``REDIS_URL``, else the in-memory
    queue (no broker)."""
    if not settings.redis.url:
        return None, InMemoryJobQueue()
    broker = (
        make_stream_broker(settings.redis.url, kinds=worker_kinds)
        if worker_kinds
        else make_stream_broker(settings.redis.url)
    )
    broker.is_worker_process = worker_process
    return broker, TaskiqJobQueue(broker)


def _in_process_worker(
    settings: Settings, queue: InMemoryJobQueue, container: AppContainer
) -> InProcessWorker:
    """The worker and reconciler loop of ``genstudio serve`` without Redis, started."""
    worker = InProcessWorker(
        queue,
        container.processor(),
        container.reconciler(),
        concurrency=settings.jobs.worker_concurrency,
        reconcile_interval=min(settings.jobs.reconcile_interval, 2.0),
        maintenance=lambda: store_maintenance(container),
    )
    worker.start()
    return worker


async def _close_clients(container: AppContainer) -> None:
    """Close what holds connections or threads: GPU clients, storage, AI clients. A
    failure is logged: the others are closed all the same."""
    closables = [
        *container.gpus().values(),  # the local renderer among them when it is used
        container.storage(),
        container.iap.apple(),
        container.iap.google(),
        container.enhancer(),
        container.captioner(),
        *container.content_moderation().classifiers,  # OpenAI's client, when configured
    ]
    for thing in dict.fromkeys(closables):
        close = getattr(thing, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", type(thing).__name__)
