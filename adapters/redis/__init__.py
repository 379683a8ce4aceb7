"""Redis adapters: the taskiq job queue (and, later, rate limits and realtime fan-out)."""

from genstudio.adapters.redis.queue import (
    KINDS,
    MAINTENANCE_STREAM,
    PROCESS_JOB_TASK,
    RECONCILE_TASK,
    TaskiqJobQueue,
    make_stream_broker,
    stream_for,
)
from genstudio.adapters.redis.streams import RedisStreamInspector

__all__ = [
    "KINDS",
    "MAINTENANCE_STREAM",
    "PROCESS_JOB_TASK",
    "RECONCILE_TASK",
    "RedisStreamInspector",
    "TaskiqJobQueue",
    "make_stream_broker",
    "stream_for",
]
