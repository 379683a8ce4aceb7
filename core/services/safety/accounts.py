"""Deleting an account (App Store Review Guideline 5.1.1(v)).

In this order, each step safe to repeat, so a second request (a retry after a
failure, a double tap) finishes what the first left and answers the same:

1. the user's unfinished jobs are cancelled, each in its own unit (their holds are
   released: ``cancel_job``), so no credit stays held for a job nobody owns;
2. one transaction locks the account row, deletes everything of the user that the
   law and the books do not need (``SafetyRepository.erase_account``), clears the
   profile's personal columns and records the files that belonged to what was
   deleted as expected uploads (``uow.uploads.expect``);
3. after the commit the files are deleted and their intents settled; a file that
   could not be deleted (or a process that died here) stays expected, and the
   reconciler's orphan sweep deletes it within the hour;
4. the identity provider ends every session and soft-deletes the sign-in
   (``AccountDirectory.revoke``); if it does not confirm, the request fails (503)
   and its retry does it again.

What stays (docs/api.md): ledger entries, lots, holds, store transactions,
entitlements and allowance grants, under the account's id, whose profile row keeps
only the balance, the tier and the dates: nothing that names a person.
"""

from __future__ import annotations

import contextlib
import logging
import uuid

from core.model.errors import JobFinished, NotFound
from core.services.generation.jobs import cancel_job
from core.services.generation.uploads import _discard_uploads
from ports.accounts import AccountDirectory
from ports.clock import Clock
from ports.storage import MediaStorage
from ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.accounts")


class AccountDeletion:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        storage: MediaStorage,
        clock: Clock,
        directory: AccountDirectory,
    ) -> None:
        self.uow_factory = uow_factory
        self.storage = storage
        self.clock = clock
        self.directory = directory

    async def delete(self, user_id: uuid.UUID, access_token: str | None) -> None:
        """Idempotent. Raises core.model.safety.AuthUnavailable when the sessions could
        not be ended (everything else is done; a retry finishes it)."""
        await self._cancel_jobs(user_id)
        keys: list[str] = []
        async with self.uow_factory() as uow:
            try:
                await uow.ledger.lock_account(user_id)
            except NotFound:
                pass  # never signed in here: nothing of theirs is stored
            else:
                now = self.clock.now()
                keys = await uow.safety.erase_account(user_id, now)
                # files become expected uploads in the transaction that drops their rows
                for key in keys:
                    await uow.uploads.expect(key, user_id, now)
                await uow.commit()
        deleted = await _discard_uploads(self.uow_factory, self.storage, keys)
        log.info("account erased", extra={"files": len(keys), "files_deleted": deleted})
        await self.directory.revoke(user_id, access_token)

    async def _cancel_jobs(self, user_id: uuid.UUID) -> None:
        async with self.uow_factory() as uow:
            jobs = await uow.safety.unfinished_jobs(user_id)
        for job in jobs:
            # one that ended (or went) meanwhile has its hold closed either way
            with contextlib.suppress(JobFinished, NotFound):
                await cancel_job(self.uow_factory, self.clock, user_id=user_id, job_id=job.id)
