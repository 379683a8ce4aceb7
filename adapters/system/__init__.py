"""The operating system's services for production: the wall clock."""

from adapters.system.clock import SystemClock

__all__ = ["SystemClock"]
