"""The local half of realtime: this process's open connections, each fed from a
bounded queue, and the replay of what a reconnecting client missed.

Both backends (``memory.InProcessRealtime``, ``redis.RedisRealtime``) share it; they
differ only in where an event goes when published (this process, or Redis and from
there every API process) and where a user's recent history is kept.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Mapping

import msgspec

log = logging.getLogger("genstudio.realtime")

_encode = msgspec.json.encode


class Ended(Exception):
    """The connection went away (``Subscription.end``)."""


class Dropped(Exception):
    """The connection fell too far behind (its queue filled up): it is closed, and the
    client reconnects with its last event id to get what it missed from the history."""


def event_key(event_id: str) -> tuple[int, int]:
    """The order of event ids (``<milliseconds>-<sequence>``, as Redis streams make
    them). Raises ValueError for anything else."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or "0")


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One published event: ``data`` is the payload's JSON, encoded once."""

    id: str
    user_id: uuid.UUID
    type: str
    data: bytes

    def text(self) -> str:
        """The frame every connection of the user is sent (made once per event by the
        hub, not per connection)."""
        return _encode({"id": self.id, "type": self.type, "data": msgspec.Raw(self.data)}).decode()


def encode_payload(payload: Mapping[str, object]) -> bytes:
    """The payload's JSON; raises TypeError for one that is not JSON-ready (the port's
    one error: a programming error, raised to the caller)."""
    try:
        return _encode(payload)
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"realtime payload is not JSON-ready: {exc}") from exc


class Subscription:
    """One open connection's feed: the replayed events, then live ones, in id order,
    each once. At most ``limit`` live events wait; one more and the connection is
    dropped (``next`` raises Dropped) rather than let its memory grow."""

    def __init__(self, user_id: uuid.UUID, limit: int) -> None:
        self.user_id = user_id
        self._limit = limit
        self._items: deque[tuple[Event, str]] = deque()
        self._ready = asyncio.Event()
        self._last = (-1, -1)
        self.dropped = False
        self.ended = False

    def end(self) -> None:
        """The connection went: a ``next`` waiting raises Ended."""
        self.ended = True
        self._ready.set()

    def offer(self, event: Event, text: str) -> None:
        if self.dropped:
            return
        if len(self._items) >= self._limit:
            self.dropped = True
            self._items.clear()  # what it missed is in the history, not here
        else:
            self._items.append((event, text))
        self._ready.set()

    def replay(self, events: list[Event]) -> None:
        """Put ``events`` (from the history, oldest first) ahead of the live ones; an
        event both replayed and received live is sent once. Not counted in the limit:
        the history is bounded itself."""
        self._items.extendleft((e, e.text()) for e in reversed(events))
        if events:
            self._ready.set()

    async def next(self, wait: float) -> str | None:
        """The next event's frame, or None after ``wait`` seconds without one (time
        for a heartbeat). Raises Dropped once the connection fell behind, Ended once it
        went."""
        while True:
            if self.ended:
                raise Ended()
            if self.dropped:
                raise Dropped()
            while self._items:
                event, text = self._items.popleft()
                key = event_key(event.id)
                if key <= self._last:
                    continue  # replayed and live both: sent once
                self._last = key
                return text
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), wait)
            except TimeoutError:
                return None


def replay_after(
    history: list[Event], last_event_id: str | None, *, limit: int, ttl: float
) -> tuple[list[Event], bool]:
    """What a client that saw ``last_event_id`` missed, and whether the history cannot
    tell (``resync``: the app should reload its state over HTTP). ``history`` is the
    user's retained events, oldest first, at most ``limit`` of them, kept ``ttl`` s."""
    if last_event_id is None:
        return [], False
    try:
        last = event_key(last_event_id)
    except ValueError:
        return [], True
    missed = [e for e in history if event_key(e.id) > last]
    trimmed = len(history) >= limit and event_key(history[0].id) > last
    expired = last[0] < (time.time() - ttl) * 1000
    return missed, trimmed or expired


class RealtimeHub(abc.ABC):
    """This process's connections by user, and the port's ``publish``: the base of both
    backends. ``queue_limit``: live events one connection may have waiting;
    ``history``: events kept per user for a reconnect, for ``history_ttl`` seconds."""

    def __init__(self, *, queue_limit: int = 256, history: int = 100, history_ttl: float = 86400):
        self.queue_limit = queue_limit
        self.history_limit = history
        self.history_ttl = history_ttl
        self._subscriptions: dict[uuid.UUID, set[Subscription]] = {}

    @property
    def connections(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    @abc.abstractmethod
    async def publish(
        self, user_id: uuid.UUID, event_type: str, payload: Mapping[str, object]
    ) -> None: ...

    @abc.abstractmethod
    async def history(self, user_id: uuid.UUID) -> list[Event]:
        """The user's retained events, oldest first (at most ``history_limit``)."""

    async def subscribe(
        self, user_id: uuid.UUID, last_event_id: str | None = None
    ) -> tuple[Subscription, bool]:
        """A feed of the user's events from now on, preceded by those after
        ``last_event_id`` still in the history; and whether the client should resync
        (``replay_after``). Registered before the history is read, so an event published
        meanwhile is not lost between the two (it is sent once)."""
        subscription = Subscription(user_id, self.queue_limit)
        self._subscriptions.setdefault(user_id, set()).add(subscription)
        if last_event_id is None:
            return subscription, False
        try:
            history = await self.history(user_id)
        except Exception:
            log.exception("reading the realtime history failed")
            return subscription, True
        missed, resync = replay_after(
            history, last_event_id, limit=self.history_limit, ttl=self.history_ttl
        )
        subscription.replay(missed)
        return subscription, resync

    def unsubscribe(self, subscription: Subscription) -> None:
        subs = self._subscriptions.get(subscription.user_id)
        if subs is not None:
            subs.discard(subscription)
            if not subs:
                del self._subscriptions[subscription.user_id]

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to this process's connections of its user (none: nothing)."""
        subs = self._subscriptions.get(event.user_id)
        if not subs:
            return
        text = event.text()
        for subscription in tuple(subs):
            subscription.offer(event, text)

    async def aclose(self) -> None:  # noqa: B027 - a hook: the in-process hub runs nothing
        """Stop what the backend runs (a reader, a flush); the connections end with
        the server."""
