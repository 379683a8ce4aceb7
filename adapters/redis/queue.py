"""The job queue on taskiq-redis's RedisStreamBroker (acknowledged delivery).

Messages carry only a job id: the worker loads the job from Postgres, so a
message delivered twice, late, or after the job ended does no harm.
"""

from __future__ import annotations

import uuid

from taskiq import AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq_redis import RedisStreamBroker

PROCESS_JOB_TASK = "genstudio.process_job"


def make_stream_broker(url: str, *, queue_name: str = "genstudio:jobs") -> RedisStreamBroker:
    return RedisStreamBroker(
        url,
        queue_name=queue_name,
        consumer_group_name="genstudio-workers",
        # read the stream from its start when the group is first created, so
        # messages enqueued before any worker existed are not skipped ("$")
        consumer_id="0",
        # a message a worker took but never acknowledged (it died) is claimed by
        # another worker after this idle time; jobs are idempotent, so a
        # redelivery is harmless
        idle_timeout=120_000,
        unacknowledged_lock_timeout=60,
        xread_block=1000,
        maxlen=100_000,
    )


class TaskiqJobQueue:
    def __init__(self, broker: AsyncBroker, task_name: str = PROCESS_JOB_TASK) -> None:
        self.broker = broker
        self.task_name = task_name

    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        kicker: AsyncKicker[[str], None] = AsyncKicker(
            task_name=self.task_name,
            broker=self.broker,
            labels={"kind": kind, "priority": priority},
        )
        await kicker.kiq(str(job_id))
