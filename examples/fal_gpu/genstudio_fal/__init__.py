"""A third GPU provider for genstudio: fal's queue API. ``GPU_PROVIDERS=modal,fal`` makes
it Modal's failover.

``FalProvider`` implements ``genstudio.ports.gpu.GpuProvider``; ``from_settings`` is the
factory genstudio finds through the entry point ``genstudio.gpu_providers: fal``;
``genstudio_fal.standin.FalStandin`` is a loopback stand-in of fal's queue API for tests.
"""

from genstudio_fal.config import from_settings, parse_models
from genstudio_fal.provider import DEFAULT_MODEL, DEFAULT_QUEUE_URL, FalProvider, fal_input

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_QUEUE_URL",
    "FalProvider",
    "fal_input",
    "from_settings",
    "parse_models",
]
