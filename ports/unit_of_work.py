"""The unit of work: one transaction over every repository, and what runs after it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Protocol, Self

from genstudio.ports.repositories.business_stats import BusinessStatsRepository
from genstudio.ports.repositories.credits import LedgerRepository
from genstudio.ports.repositories.idempotency import IdempotencyRepository
from genstudio.ports.repositories.jobs import JobEventRepository, JobRepository
from genstudio.ports.repositories.media import MediaRepository, UploadRepository
from genstudio.ports.repositories.moderation import ModerationRepository
from genstudio.ports.repositories.notifications import NotificationRepository, PushTokenRepository
from genstudio.ports.repositories.profiles import ProfileRepository
from genstudio.ports.repositories.purchases import PurchaseRepository
from genstudio.ports.repositories.safety import SafetyRepository
from genstudio.ports.repositories.social import SocialRepository
from genstudio.ports.repositories.training import PhotoSetRepository, TrainedModelRepository

#: work to do once a transaction committed: wake a job's worker, and later notify,
#: publish realtime, track analytics
Effect = Callable[[], Awaitable[None]]


class UnitOfWork(Protocol):
    @property
    def profiles(self) -> ProfileRepository: ...

    @property
    def ledger(self) -> LedgerRepository: ...

    @property
    def jobs(self) -> JobRepository: ...

    @property
    def job_events(self) -> JobEventRepository: ...

    @property
    def media(self) -> MediaRepository: ...

    @property
    def idempotency(self) -> IdempotencyRepository: ...

    @property
    def purchases(self) -> PurchaseRepository: ...

    @property
    def uploads(self) -> UploadRepository: ...

    @property
    def photo_sets(self) -> PhotoSetRepository: ...

    @property
    def trained_models(self) -> TrainedModelRepository: ...

    @property
    def notifications(self) -> NotificationRepository: ...

    @property
    def push_tokens(self) -> PushTokenRepository: ...

    @property
    def social(self) -> SocialRepository: ...

    @property
    def safety(self) -> SafetyRepository: ...

    @property
    def moderation(self) -> ModerationRepository: ...

    @property
    def business_stats(self) -> BusinessStatsRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless ``commit()`` ran; then run the effects of the commits that
        succeeded (``after_commit``)."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None:
        """Undo what ran since the last commit, and drop the effects registered since."""
        ...

    def after_commit(self, effect: Effect) -> None:
        """Run ``effect`` once the transaction it was registered in has committed.

        Registering is only a list append (nothing is sent, no round trip). The effects
        of a successful ``commit()`` run in the order they were registered, each once,
        when the unit of work ends (``async with`` exits, its connection already given
        back): the caller returns only after they ran. Effects registered since the
        last commit are dropped by ``rollback()``, by a refused commit and by an
        exception that ends the unit before its commit. An effect that fails is logged
        with its exception and never raised to the caller; the others still run.

        An effect is best effort: a process that dies between the commit and the
        effect loses it. What must not be lost (a notification, a push) is a row
        written in the same transaction (an outbox), delivered at least once by a task
        and found again by the reconciler if its effect never ran. For jobs the
        ``jobs`` table itself is that outbox: the reconciler re-sends the wake-ups of
        due jobs that no worker heard about.
        """
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
