"""Realtime fan-out (ports/realtime.py) and this process's WebSocket feeds: in one
process (the embedded default) or across processes on Redis streams."""

from genstudio.adapters.realtime.hub import Dropped, Ended, Event, RealtimeHub, Subscription
from genstudio.adapters.realtime.memory import InProcessRealtime
from genstudio.adapters.realtime.redis import RedisRealtime

__all__ = [
    "Dropped",
    "Ended",
    "Event",
    "InProcessRealtime",
    "RealtimeHub",
    "RedisRealtime",
    "Subscription",
]
