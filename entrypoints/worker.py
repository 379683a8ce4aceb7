"""The Taskiq worker process: consumes job ids from Redis and runs them."""

from __future__ import annotations

import asyncio
import logging
import signal
import uuid

from taskiq import AsyncBroker
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from adapters.redis import PROCESS_JOB_TASK
from core.services.processing import JobProcessor
from entrypoints.runtime import open_runtime
from entrypoints.settings import Settings

log = logging.getLogger("genstudio.worker")


def register_tasks(broker: AsyncBroker, processor: JobProcessor) -> None:
    """Tasks take ids, not objects, and load fresh state: redelivery is harmless."""

    async def process_job(job_id: str) -> None:
        await processor.process(uuid.UUID(job_id))

    broker.register_task(process_job, task_name=PROCESS_JOB_TASK)


async def run_worker(settings: Settings) -> None:
    if not settings.redis_url:
        raise SystemExit(
            "genstudio worker needs REDIS_URL; without it, `genstudio serve` runs the worker "
            "in-process"
        )
    async with open_runtime(settings, in_process_worker=False, worker_process=True) as runtime:
        assert runtime.broker is not None
        register_tasks(runtime.broker, runtime.container.processor())
        finish = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, finish.set)
        receiver = Receiver(
            runtime.broker,
            max_async_tasks=settings.worker_concurrency,
            # acknowledge after the task ran: a worker killed mid-job leaves the
            # message pending, and another worker claims it after the idle timeout
            ack_type=AcknowledgeType.WHEN_EXECUTED,
            propagate_exceptions=False,
            wait_tasks_timeout=30,
        )
        log.info("worker listening", extra={"concurrency": settings.worker_concurrency})
        await receiver.listen(finish)
        log.info("worker stopped")
