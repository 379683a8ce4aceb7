"""Every port in memory: the fast test suite's adapters, and a reference for real ones.

Usable from outside test suites: ``InMemoryStore`` holds the data,
``InMemoryUnitOfWork(store)`` gives transactions over it with the same contract as
the Postgres adapter (rollback unless committed, account locks, idempotency locks).
"""

from adapters.memory.ai import FixedCaptioner, SuffixPromptEnhancer
from adapters.memory.auth import StaticTokenVerifier
from adapters.memory.clock import FakeClock
from adapters.memory.gpu import InMemoryGpuProvider
from adapters.memory.queue import InMemoryJobQueue
from adapters.memory.storage import InMemoryStorage
from adapters.memory.store import InMemoryStore
from adapters.memory.uow import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory

__all__ = [
    "FakeClock",
    "FixedCaptioner",
    "InMemoryGpuProvider",
    "InMemoryJobQueue",
    "InMemoryStorage",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "StaticTokenVerifier",
    "SuffixPromptEnhancer",
]
