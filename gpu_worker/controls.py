"""Controls read at the start of every job: how outputs travel, and how the preview
engine behaves (its pace and the failures it acts out, for tests and trials).

From the environment (``GPU_WORKER_INLINE_MAX_BYTES``, ``GPU_WORKER_PREVIEW_SECONDS``)
or, when ``GPU_WORKER_CONTROLS`` names a JSON file, from that file, re-read for each
job so a test can change them between jobs of a running worker. The diffusers engine
reads none of the preview's controls.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

import msgspec

DEFAULT_INLINE_MAX_BYTES = 1_000_000  # docs/providers.md: prefer URLs above ~1 MB


class Controls(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    #: outputs up to this size travel inline as base64; larger ones go to the output
    #: store and travel as a pre-signed URL (every output inline when there is no store)
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    #: the preview engine takes at least this long per job, its progress paced over it
    seconds: float = 0.0
    #: the preview engine never finishes a job (until it is cancelled)
    stuck: bool = False
    #: the preview engine fails each job at its end: refused on content grounds, or
    #: broken ("infrastructure": an exception, as a GPU out of memory would be)
    fail: Literal["content", "infrastructure"] | None = None


ControlSource = Callable[[], Controls]


def controls_from_env(env: Mapping[str, str] = os.environ) -> ControlSource:
    """The controls the environment names: a file re-read per job, else fixed values."""
    path = env.get("GPU_WORKER_CONTROLS")
    if path:
        return lambda: read_controls(Path(path))
    fixed = Controls(
        inline_max_bytes=int(env.get("GPU_WORKER_INLINE_MAX_BYTES", DEFAULT_INLINE_MAX_BYTES)),
        seconds=float(env.get("GPU_WORKER_PREVIEW_SECONDS", "0")),
    )
    return lambda: fixed


def read_controls(path: Path) -> Controls:
    """The file's controls; the defaults while it does not exist."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Controls()
    return msgspec.json.decode(data, type=Controls)


def write_controls(path: Path, controls: Controls) -> None:
    """Replace the file at once (a job starting meanwhile reads the old or the new)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(msgspec.json.encode(controls))
    tmp.replace(path)
