"""Rate counters on the `limits` package: in memory, or in Redis."""

from genstudio.adapters.limits.counter import LimitsCounter, memory_counter, redis_counter

__all__ = ["LimitsCounter", "memory_counter", "redis_counter"]
