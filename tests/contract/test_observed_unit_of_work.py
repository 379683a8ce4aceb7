"""The UnitOfWork contract (tests/contract/test_unit_of_work.py) over the observed
unit of work (adapters/observed), wrapping the memory and Postgres adapters, recording into
``MemoryMetrics``: the decorator the container puts around every unit of work keeps
every promise of the unit it wraps (rollbacks, locks, after-commit effects, refused
commits)."""

from __future__ import annotations

import pytest

from genstudio.adapters import observed
from genstudio.adapters.memory import InMemoryUnitOfWorkFactory
from genstudio.adapters.memory.metrics import MemoryMetrics
from genstudio.ports.unit_of_work import UnitOfWorkFactory
from tests.contract.test_unit_of_work import *  # noqa: F403  # the same specs, collected here


@pytest.fixture(params=["memory", "postgres"])
def uow_factory(request: pytest.FixtureRequest) -> UnitOfWorkFactory:
    inner: UnitOfWorkFactory
    if request.param == "memory":
        inner = InMemoryUnitOfWorkFactory()
    else:
        from genstudio.adapters.supabase.uow import SqlUnitOfWorkFactory

        inner = SqlUnitOfWorkFactory(request.getfixturevalue("pg_engine"))
    # by its module: the contract's own names (a Protocol of this name) come in with *
    return observed.ObservedUnitOfWorkFactory(inner, MemoryMetrics())
