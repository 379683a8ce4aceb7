"""What the remote GPU adapters (gpu_modal, gpu_runpod) share: the worker input and
output contract of docs/providers.md, HTTP calls with timeouts, 429 backoff and a
client-side rate limit, and fetching outputs by URL with a size cap.

A support library, not an adapter of its own: it implements no port, so both GPU
adapters may import it while staying independent of each other.
"""

from genstudio.adapters.gpu_http.calls import Backoff, HttpCaller, TokenBucket
from genstudio.adapters.gpu_http.contract import (
    CONTENT_MARKER,
    MAX_OUTPUT_BYTES,
    classify_failure,
    decode_images,
    decode_outputs,
    fetch_output,
    output_cap,
    progress_of,
    worker_input,
)

__all__ = [
    "CONTENT_MARKER",
    "MAX_OUTPUT_BYTES",
    "Backoff",
    "HttpCaller",
    "TokenBucket",
    "classify_failure",
    "decode_images",
    "decode_outputs",
    "fetch_output",
    "output_cap",
    "progress_of",
    "worker_input",
]
