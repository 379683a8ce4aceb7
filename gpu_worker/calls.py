"""The body of the Modal GPU function: one call, its progress kept in the records
(a ``modal.Dict`` keyed by call id) where ``/result`` reads it."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from gpu_worker.contract import JobCancelled

if TYPE_CHECKING:  # the web endpoints import this module without the engine's packages
    from gpu_worker.worker import Worker


def cancel_key(call_id: str) -> str:
    """Where a call's cancellation is kept: apart from its progress, which the GPU
    function overwrites."""
    return f"{call_id}:cancelled"


class SyncRecords(Protocol):
    """The records as the GPU function sees them (modal.Dict's blocking methods)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def put(self, key: str, value: Any, *, skip_if_exists: bool = False) -> Any: ...


def run_call(
    job: dict[str, Any],
    *,
    call_id: str,
    records: SyncRecords,
    worker: Worker,
    cancelled: threading.Event | None = None,
) -> dict[str, Any]:
    """Run ``job`` as call ``call_id``: mark it started, record each progress report,
    stop once the call was cancelled (the records say so, or ``cancelled`` is set)."""
    cancelled = cancelled or threading.Event()
    if records.get(cancel_key(call_id)):
        raise JobCancelled("the call was cancelled before it started")
    records.put(call_id, {"started": True})

    def report(update: dict[str, int]) -> None:
        if records.get(cancel_key(call_id)):
            cancelled.set()  # the engine stops at its next check
            return
        records.put(call_id, {"started": True, **update})

    return worker.run(job, report=report, cancelled=cancelled)
