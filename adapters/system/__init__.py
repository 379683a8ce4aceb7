"""The operating system's services for production: the wall clock."""

from genstudio.adapters.system.clock import SystemClock

__all__ = ["SystemClock"]
