"""Runpod serverless (the fallback GPU provider): /run, /status, /cancel, /health.

The worker's input and output contract is in docs/providers.md.
"""

from genstudio.adapters.gpu_runpod.provider import (
    RunpodProvider,
    make_runpod_provider,
    parse_endpoints,
    webhook_url_for,
)

__all__ = ["RunpodProvider", "make_runpod_provider", "parse_endpoints", "webhook_url_for"]
