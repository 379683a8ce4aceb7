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
    profiles: ProfileRepository
    ledger: LedgerRepository
    jobs: JobRepository
    job_events: JobEventRepository
    media: MediaRepository
    idempotency: IdempotencyRepository
    purchases: PurchaseRepository
    uploads: UploadRepository

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
