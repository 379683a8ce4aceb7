""""""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from ports.repositories.credits import LedgerRepository
from ports.repositories.idempotency import IdempotencyRepository
from ports.repositories.jobs import JobEventRepository, JobRepository
from ports.repositories.media import MediaRepository, UploadRepository
from ports.repositories.profiles import ProfileRepository
from ports.repositories.purchases import PurchaseRepository


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

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Roll back unless ``commit()`` ran."""
        ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
