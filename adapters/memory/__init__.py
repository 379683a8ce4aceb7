"""Every port in memory: the fast test suite's adapters, and a reference for real ones.

Usable from outside test suites: ``InMemoryStore`` holds the data,
``InMemoryUnitOfWork(store)`` gives transactions over it with the same contract as
the Postgres adapter (rollback unless committed, account locks, idempotency locks).
"""

from genstudio.adapters.memory.ai import FixedCaptioner, SuffixPromptEnhancer
from genstudio.adapters.memory.auth import StaticTokenVerifier
from genstudio.adapters.memory.clock import FakeClock
from genstudio.adapters.memory.gpu import InMemoryGpuProvider
from genstudio.adapters.memory.queue import InMemoryJobQueue
from genstudio.adapters.memory.storage import InMemoryStorage
from genstudio.adapters.memory.store import InMemoryStore
from genstudio.adapters.memory.uow import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory

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
