"""The Taskiq worker and scheduler processes."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid
from collections.abc import Callable
from datetime import timedelta

from taskiq import AsyncBroker, TaskiqScheduler
from taskiq.acks import AcknowledgeType
from taskiq.cli.scheduler.run import SchedulerLoop
from taskiq.receiver import Receiver
from taskiq.schedule_sources import LabelScheduleSource

from genstudio.adapters.redis import MAINTENANCE_STREAM, PROCESS_JOB_TASK, RECONCILE_TASK
from genstudio.core.services.processing.processor import JobProcessor
from genstudio.core.services.reconcile import Reconciler
from genstudio.entrypoints.containers import AppContainer
from genstudio.entrypoints.inprocess import drain_woken
from genstudio.entrypoints.maintenance import INTERVAL as MAINTENANCE_INTERVAL
from genstudio.entrypoints.maintenance import store_maintenance
from genstudio.entrypoints.observability import job_metrics
from genstudio.entrypoints.runtime import open_runtime
from genstudio.entrypoints.settings import Settings
from genstudio.ports.queue import JobQueue

log = logging.getLogger("genstudio.worker")

STORE_MAINTENANCE_TASK = "genstudio.store_maintenance"


def register_tasks(
    broker: AsyncBroker,
    processor: JobProcessor | None,
    reconciler: Reconciler | None,
    *,
    reconcile_every: int = 5,
    container: AppContainer | None = None,
    queue: JobQueue | None = None,
) -> None:
    """Tasks take ids, not objects, and load fresh state: redelivery is harmless.

    The scheduler registers them too (without a processor) to read their schedules.
    """

    async def process_job(job_id: str, kind: str = "image") -> None:
        if processor is None:
            raise RuntimeError("jobs run in `genstudio worker`, not here")
        if queue is None:
            raise RuntimeError("a worker's process_job needs the queue, for its next wake-up")
        ran = await drain_woken(processor, queue, uuid.UUID(job_id), kind)
        log.debug("woken", extra={"job_id": job_id, "kind": kind, "ran": ran})

    async def reconcile() -> None:
        if reconciler is None:
            raise RuntimeError("the reconciler runs in `genstudio worker`, not here")
        await reconciler.tick()

    async def maintain_stores() -> None:
        if container is None:
            raise RuntimeError("store maintenance runs in `genstudio worker`, not here")
        await store_maintenance(container)

    broker.register_task(process_job, task_name=PROCESS_JOB_TASK)
    broker.register_task(
        maintain_stores,
        task_name=STORE_MAINTENANCE_TASK,
        queue_name=MAINTENANCE_STREAM,
        schedule=[{"interval": MAINTENANCE_INTERVAL}],
    )
    broker.register_task(
        reconcile,
        task_name=RECONCILE_TASK,
        queue_name=MAINTENANCE_STREAM,
        schedule=[{"interval": max(1, reconcile_every)}],
    )


def _track_errors(settings: Settings, process: str) -> None:
    """Errors to Sentry when SENTRY_DSN is set (sentry-sdk imported only then)."""
    if settings.observability.sentry_dsn:
        from genstudio.entrypoints.error_tracking import init_error_tracking

        init_error_tracking(settings.observability, process=process)


def _stop_on_signals(finish: asyncio.Event, *also: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        for call in also:
            call()
        finish.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


async def run_worker(settings: Settings, kinds: list[str] | None = None) -> None:
    if not settings.redis.url:
        raise SystemExit(
            "genstudio worker needs REDIS_URL; without it, `genstudio serve` runs the worker "
            "in-process"
        )
    _track_errors(settings, "worker")
    async with (
        open_runtime(
            settings, in_process_worker=False, worker_process=True, worker_kinds=kinds
        ) as runtime,
        # its breakers read into its metrics, which it serves on
        # GENSTUDIO_WORKER_METRICS_PORT when set (issue #20)
        job_metrics(
            settings,
            runtime.container.router(),
            runtime.container.clock(),
            runtime.container.metrics(),
            listen=True,
        ),
    ):
        assert runtime.broker is not None
        c = runtime.container
        register_tasks(
            runtime.broker,
            c.processor(),
            c.reconciler(),
            reconcile_every=round(settings.jobs.reconcile_interval),
            container=c,
            queue=c.queue(),
        )
        finish = asyncio.Event()
        processor = c.processor()
        # on a signal, claim nothing more at once (a drain would otherwise go on to the
        # next job while the receiver waits for the running ones)
        _stop_on_signals(finish, processor.stop_claiming)
        try:
            # a new worker holds no messages: wake whatever is due right away
            await c.reconciler().tick(fresh_start=True)
        except Exception:
            log.exception("first reconcile failed; the scheduler's next one will retry")
        receiver = Receiver(
            runtime.broker,
            max_async_tasks=settings.jobs.worker_concurrency,
            # acknowledge after the task ran: a worker killed mid-job leaves the
            # message pending for another worker (and the job's lease runs out)
            ack_type=AcknowledgeType.WHEN_EXECUTED,
            propagate_exceptions=False,
            wait_tasks_timeout=settings.jobs.stop_grace,
        )
        log.info(
            "worker listening",
            extra={"concurrency": settings.jobs.worker_concurrency, "kinds": kinds or "all"},
        )
        await receiver.listen(finish)  # returns once its tasks ended, or after the grace
        # the jobs still running (a GPU job takes minutes) are cancelled and handed back
        # before the runtime closes under them: left at a cloud provider for another
        # worker to follow, or requeued with their attempt given back
        handed = await processor.stop(grace=0)
        log.info("worker stopped", extra={"handed_back": handed})


async def run_scheduler(settings: Settings) -> None:
    """Sends the reconciler's task every ``GENSTUDIO_RECONCILE_INTERVAL`` seconds."""
    if not settings.redis.url:
        raise SystemExit("genstudio scheduler needs REDIS_URL")
    _track_errors(settings, "scheduler")
    from genstudio.adapters.redis import make_stream_broker

    broker = make_stream_broker(settings.redis.url)
    register_tasks(broker, None, None, reconcile_every=round(settings.jobs.reconcile_interval))
    source = LabelScheduleSource(broker)
    scheduler = TaskiqScheduler(broker, sources=[source])
    await broker.startup()
    await source.startup()  # reads the schedules from the tasks' labels
    await scheduler.startup()
    finish = asyncio.Event()
    _stop_on_signals(finish)
    loop_task = asyncio.create_task(
        SchedulerLoop(scheduler).run(update_interval=timedelta(minutes=1))
    )
    log.info("scheduler running", extra={"reconcile_every": settings.jobs.reconcile_interval})
    try:
        await finish.wait()
    finally:
        loop_task.cancel()
        await source.shutdown()
        await scheduler.shutdown()
        await broker.shutdown()
