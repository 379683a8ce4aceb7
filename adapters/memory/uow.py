"""The in-memory unit of work: copies of the store, written back on commit."""

from __future__ import annotations

import asyncio
import copy
from types import TracebackType
from typing import Self

from genstudio.adapters.after_commit import AfterCommit
from genstudio.adapters.memory.repositories.business_stats import InMemoryBusinessStats
from genstudio.adapters.memory.repositories.credits import InMemoryLedger
from genstudio.adapters.memory.repositories.idempotency import InMemoryIdempotency
from genstudio.adapters.memory.repositories.jobs import InMemoryJobEvents, InMemoryJobs
from genstudio.adapters.memory.repositories.media import InMemoryMedia, InMemoryUploads
from genstudio.adapters.memory.repositories.moderation import InMemoryModeration
from genstudio.adapters.memory.repositories.notifications import (
    InMemoryNotifications,
    InMemoryPushTokens,
)
from genstudio.adapters.memory.repositories.profiles import InMemoryProfiles
from genstudio.adapters.memory.repositories.purchases import InMemoryPurchases
from genstudio.adapters.memory.repositories.safety import InMemorySafety
from genstudio.adapters.memory.repositories.social import InMemorySocial
from genstudio.adapters.memory.repositories.training import InMemoryPhotoSets, InMemoryTrainedModels
from genstudio.adapters.memory.store import InMemoryStore, _Data
from genstudio.ports.unit_of_work import Effect


class InMemoryUnitOfWork:
    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.held: dict[object, asyncio.Lock] = {}
        self._work: _Data | None = None
        self._base: _Data | None = None
        self.committed = False
        self._effects = AfterCommit()
        self.profiles = InMemoryProfiles(self)
        self.ledger = InMemoryLedger(self)
        self.jobs = InMemoryJobs(self)
        self.job_events = InMemoryJobEvents(self)
        self.media = InMemoryMedia(self)
        self.idempotency = InMemoryIdempotency(self)
        self.purchases = InMemoryPurchases(self)
        self.uploads = InMemoryUploads(self)
        self.photo_sets = InMemoryPhotoSets(self)
        self.trained_models = InMemoryTrainedModels(self)
        self.notifications = InMemoryNotifications(self)
        self.push_tokens = InMemoryPushTokens(self)
        self.social = InMemorySocial(self)
        self.safety = InMemorySafety(self)
        self.moderation = InMemoryModeration(self)
        self.business_stats = InMemoryBusinessStats(self)

    def view(self) -> _Data:
        if self._work is None:
            raise RuntimeError("use the unit of work inside 'async with'")
        return self._work

    async def acquire(self, key: object) -> None:
        """Take a row lock until the end; afterwards re-read what others committed."""
        if key in self.held:
            return
        lock = self.store.lock_for(key)
        await lock.acquire()
        self.held[key] = lock
        self._refresh()

    def _refresh(self) -> None:
        # like READ COMMITTED after a lock wait: take the latest committed rows we
        # have not touched ourselves
        assert self._work is not None and self._base is not None
        latest = self.store.data
        for name in vars(latest):
            mine: dict[object, object] = getattr(self._work, name)
            base: dict[object, object] = getattr(self._base, name)
            theirs: dict[object, object] = getattr(latest, name)
            for k, v in theirs.items():
                if mine.get(k, _MISSING) == base.get(k, _MISSING):
                    mine[k] = copy.deepcopy(v)
                    base[k] = copy.deepcopy(v)

    async def __aenter__(self) -> Self:
        self._base = copy.deepcopy(self.store.data)
        self._work = copy.deepcopy(self._base)
        self.committed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._work = None
        self._base = None
        self._release()
        await self._effects.run()

    def _release(self) -> None:
        # like Postgres: row and advisory locks end with the transaction
        for lock in self.held.values():
            lock.release()
        self.held.clear()

    async def commit(self) -> None:
        work, base = self.view(), self._base
        assert base is not None
        latest = self.store.data
        # write back only what this unit changed, over what others committed since
        for name in vars(latest):
            mine: dict[object, object] = getattr(work, name)
            before: dict[object, object] = getattr(base, name)
            target: dict[object, object] = getattr(latest, name)
            for k in set(mine) | set(before):
                if k not in mine:
                    target.pop(k, None)
                elif mine[k] != before.get(k, _MISSING):
                    target[k] = copy.deepcopy(mine[k])
        self._base = copy.deepcopy(latest)
        self._work = copy.deepcopy(latest)
        self.committed = True
        self._release()
        self._effects.committed()

    async def rollback(self) -> None:
        self._work = copy.deepcopy(self.store.data)
        self._base = copy.deepcopy(self.store.data)
        self._release()
        self._effects.drop()

    def after_commit(self, effect: Effect) -> None:
        self._effects.add(effect)


_MISSING = object()


class InMemoryUnitOfWorkFactory:
    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()

    def __call__(self) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store)
