"""Realtime in one process: the embedded default (API and worker are one process)."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping

from genstudio.adapters.realtime.hub import Event, RealtimeHub, encode_payload

#: users whose history is kept; the least recently published-to are forgotten first
MAX_USERS = 10_000


class InProcessRealtime(RealtimeHub):
    """Publishes straight to this process's connections; keeps each user's last
    ``history`` events (ids like a Redis stream's, ``<ms>-<seq>``) for replays, for
    at most ``MAX_USERS`` users: memory stays bounded however many users publish."""

    def __init__(self, *, queue_limit: int = 256, history: int = 100, history_ttl: float = 86400):
        super().__init__(queue_limit=queue_limit, history=history, history_ttl=history_ttl)
        self._history: OrderedDict[uuid.UUID, deque[Event]] = OrderedDict()
        self._last = (0, 0)

    def _next_id(self) -> str:
        ms = int(time.time() * 1000)
        last_ms, seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, seq + 1)
        return f"{self._last[0]}-{self._last[1]}"

    async def publish(
        self, user_id: uuid.UUID, event_type: str, payload: Mapping[str, object]
    ) -> None:
        data = encode_payload(payload)
        event = Event(id=self._next_id(), user_id=user_id, type=event_type, data=data)
        kept = self._history.get(user_id)
        if kept is None:
            kept = self._history[user_id] = deque(maxlen=self.history_limit)
            if len(self._history) > MAX_USERS:
                self._history.popitem(last=False)
        else:
            self._history.move_to_end(user_id)
        kept.append(event)
        self.deliver(event)

    async def history(self, user_id: uuid.UUID) -> list[Event]:
        cutoff = (time.time() - self.history_ttl) * 1000
        return [e for e in self._history.get(user_id, ()) if int(e.id.split("-")[0]) >= cutoff]
