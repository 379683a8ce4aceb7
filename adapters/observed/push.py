"""A push sender that reports what it sent and what failed to the metrics port."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from genstudio.ports.metrics import Metrics, PushStage
from genstudio.ports.push import (
    DEVICE_NOT_REGISTERED,
    INVALID_CREDENTIALS,
    MESSAGE_RATE_EXCEEDED,
    MESSAGE_TOO_BIG,
    PushMessage,
    PushReceipt,
    PushResult,
    PushSender,
    PushUnavailable,
)

#: the push service not reached at all (timeouts, 5xx, 429 after the sender's retries)
UNAVAILABLE = "unavailable"
#: error codes kept as they are; any other is counted as ``other`` (a label per
#: free-text code would grow without bound)
KNOWN_ERRORS = frozenset(
    {
        DEVICE_NOT_REGISTERED,
        MESSAGE_TOO_BIG,
        MESSAGE_RATE_EXCEEDED,
        INVALID_CREDENTIALS,
        "MismatchSenderId",
        UNAVAILABLE,
    }
)


def error_label(code: str | None) -> str:
    return code if code in KNOWN_ERRORS else "other"


class ObservedPushSender:
    """Wraps a ``PushSender``; everything else (``aclose``) is the wrapped one's."""

    def __init__(self, inner: PushSender, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        try:
            results = await self.inner.send(messages)
        except PushUnavailable:
            self.metrics.push_failed(PushStage.SEND, UNAVAILABLE, len(messages))
            raise
        sent = sum(1 for r in results if r.ok)
        if sent:
            self.metrics.push_sent(sent)
        errors = Counter(error_label(r.error) for r in results if not r.ok)
        for code, count in errors.items():
            self.metrics.push_failed(PushStage.SEND, code, count)
        return results

    async def receipts(self, ticket_ids: Sequence[str]) -> list[PushReceipt]:
        try:
            receipts = await self.inner.receipts(ticket_ids)
        except PushUnavailable:
            self.metrics.push_failed(PushStage.RECEIPT, UNAVAILABLE, len(ticket_ids))
            raise
        errors = Counter(error_label(r.error) for r in receipts if not r.ok)
        for code, count in errors.items():
            self.metrics.push_failed(PushStage.RECEIPT, code, count)
        return receipts
