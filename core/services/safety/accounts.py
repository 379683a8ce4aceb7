"""Deleting an account (App Store Review Guideline 5.1.1(v)).

In this order, each step safe to repeat, so a second request (a retry after a
failure, a double tap) finishes what the first left and answers the same:

1. the user's unfinished jobs are cancelled, each in its own unit (their holds are
   released: ``cancel_job``), so no credit stays held for a job nobody owns; then the
   user's posts are withdrawn (``removed``, committed): no new like or comment;
2. one transaction locks the user's posts, then the account row, deletes everything of the user that the
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

from genstudio.core.model.errors import ConcurrencyConflict, JobFinished, NotFound
from genstudio.core.services.generation.jobs import cancel_job
from genstudio.core.services.generation.uploads import _discard_uploads
from genstudio.ports.accounts import AccountDirectory
from genstudio.ports.clock import Clock
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.accounts")

#: erasing gives way to likes and unlikes of the account's posts at that moment
#: (a lock wait that runs out is a ConcurrencyConflict) and is tried again
ERASE_ATTEMPTS = 5


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
        """Idempotent. Raises genstudio.core.model.safety.AuthUnavailable when the sessions could
        not be ended (everything else is done; a retry finishes it)."""
        await self._cancel_jobs(user_id)
        async with self.uow_factory() as uow:
            # nobody reaches the posts from here on: likes and comments stop coming
            await uow.safety.withdraw_posts(user_id, self.clock.now())
            await uow.commit()
        for attempt in range(1, ERASE_ATTEMPTS + 1):
            try:
                keys = await self._erase(user_id)
                break
            except ConcurrencyConflict:
                # a lock wait ran out (likes and unlikes of its posts at that moment)
                if attempt == ERASE_ATTEMPTS:
                    raise
                await self.clock.sleep(0.05 * attempt)
        deleted = await _discard_uploads(self.uow_factory, self.storage, keys)
        log.info("account erased", extra={"files": len(keys), "files_deleted": deleted})
        await self.directory.revoke(user_id, access_token)

    async def _erase(self, user_id: uuid.UUID) -> list[str]:
        keys: list[str] = []
        async with self.uow_factory() as uow:
            # lock order: the user's posts, then the account (SafetyRepository.lock_posts)
            await uow.safety.lock_posts(user_id)
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
        return keys

    async def _cancel_jobs(self, user_id: uuid.UUID) -> None:
        async with self.uow_factory() as uow:
            jobs = await uow.safety.unfinished_jobs(user_id)
        for job in jobs:
            # one that ended (or went) meanwhile has its hold closed either way
            with contextlib.suppress(JobFinished, NotFound):
                await cancel_job(self.uow_factory, self.clock, user_id=user_id, job_id=job.id)
