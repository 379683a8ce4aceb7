"""Decorators over ports that report what passed through them to the metrics port
(``ports/metrics.py``): the unit of work (jobs and credits, as committed) and the
push sender. They record; they never change what the wrapped adapter does."""

from genstudio.adapters.observed.push import ObservedPushSender
from genstudio.adapters.observed.uow import ObservedUnitOfWork, ObservedUnitOfWorkFactory

__all__ = ["ObservedPushSender", "ObservedUnitOfWork", "ObservedUnitOfWorkFactory"]
