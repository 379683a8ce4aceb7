"""Redis adapters: the taskiq job queue (and, later, rate limits and realtime fan-out)."""

from adapters.redis.queue import PROCESS_JOB_TASK, TaskiqJobQueue, make_stream_broker

__all__ = ["PROCESS_JOB_TASK", "TaskiqJobQueue", "make_stream_broker"]
