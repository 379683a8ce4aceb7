"""Stream lengths and pending messages, for the operations dashboard."""

from __future__ import annotations

from redis.asyncio import Redis

from genstudio.adapters.redis.queue import KINDS, MAINTENANCE_STREAM, stream_for
from genstudio.ports.queue import StreamDepth


class RedisStreamInspector:
    """Reads the job streams and the maintenance stream over the process's client."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def streams(self) -> list[StreamDepth]:
        out: list[StreamDepth] = []
        for name in [*(stream_for(k) for k in KINDS), MAINTENANCE_STREAM]:
            length = await self._redis.xlen(name)
            pending = 0
            if length:
                groups = await self._redis.xinfo_groups(name)
                pending = sum(int(g.get("pending", 0)) for g in groups)
            out.append(StreamDepth(name=name, length=length, pending=pending))
        return out
