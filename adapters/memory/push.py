"""Push in memory: records what was sent; tokens can be told to fail."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from genstudio.ports.push import (
    DEVICE_NOT_REGISTERED,
    PushMessage,
    PushReceipt,
    PushResult,
    PushUnavailable,
)


class RecordingPushSender:
    """``refused``: token -> error code for its sends; ``unregistered``: tokens whose
    receipts say DeviceNotRegistered; ``down``: every call raises PushUnavailable."""

    def __init__(self) -> None:
        self.sent: list[PushMessage] = []
        self.refused: dict[str, str] = {}
        self.unregistered: set[str] = set()
        self.down = False
        self._tickets: dict[str, str] = {}
        self._ids = itertools.count(1)

    async def send(self, messages: Sequence[PushMessage]) -> list[PushResult]:
        if self.down:
            raise PushUnavailable("down")
        results = []
        for m in messages:
            if m.to in self.refused:
                results.append(PushResult(token=m.to, error=self.refused[m.to], message="refused"))
                continue
            ticket = f"t{next(self._ids)}"
            self._tickets[ticket] = m.to
            self.sent.append(m)
            results.append(PushResult(token=m.to, ticket_id=ticket))
        return results

    async def receipts(self, ticket_ids: Sequence[str]) -> list[PushReceipt]:
        if self.down:
            raise PushUnavailable("down")
        out = []
        for t in ticket_ids:
            token = self._tickets.get(t)
            if token is None:
                continue
            gone = token in self.unregistered
            out.append(
                PushReceipt(ticket_id=t, ok=not gone, error=DEVICE_NOT_REGISTERED if gone else None)
            )
        return out
