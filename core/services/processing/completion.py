"""A job its provider completed: outputs stored by its kind's handler, then recorded,
the job succeeded and its hold settled, in one unit of work."""

from __future__ import annotations

import logging
import uuid

from genstudio.core.model.analytics import job_ended
from genstudio.core.model.errors import InvalidInput
from genstudio.core.model.events import JobEvent, JobEventKind
from genstudio.core.model.jobs import FailureReason, Job, JobError
from genstudio.core.model.moderation import ContentRefused
from genstudio.core.model.notifications import EventKind
from genstudio.core.services.analytics import Tracker, track
from genstudio.core.services.credits import settle_hold
from genstudio.core.services.notifications import events
from genstudio.core.services.notifications.emit import ROWS_ONLY, Notifier
from genstudio.core.services.processing.failures import Failures
from genstudio.core.services.processing.outputs import (
    OutputFiles,
    OutputHandler,
    OutputHandlers,
    Stored,
)
from genstudio.core.services.realtime import job_updated
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import Completed, GpuProvider, ProviderUnavailable
from genstudio.ports.moderation import ModerationUnavailable
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")


class NoOutputHandler(LookupError):
    """No handler is registered for the job's kind: a wiring fault (the job fails as
    an internal error, and its credits come back)."""


class Completion:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        storage: MediaStorage,
        outputs: OutputHandlers,
        failures: Failures,
        notifier: Notifier = ROWS_ONLY,
        *,
        realtime: RealtimePublisher | None = None,
        analytics: Tracker | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.storage = storage
        self.outputs = outputs
        self.failures = failures
        self.notifier = notifier
        self.realtime = realtime
        self.analytics = analytics  # issue #20: the job's end, after commit

    async def succeed(self, job_id: uuid.UUID, gpu: GpuProvider, status: Completed) -> Job | None:
        """Store and record the outputs; a job that ended meanwhile keeps none of them.

        Outputs that are not what the job asked for fail the attempt as the provider's
        fault (it is retried). An output moderation refuses fails the job for good
        with the content reason (not retried, not failed over: the provider worked),
        its hold released, nothing stored. Raises NoOutputHandler for a kind without
        a handler.
        """
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is None or job.status.terminal:
            return job
        handler = self.outputs.get(job.kind)
        if handler is None:
            raise NoOutputHandler(f"no output handler for {job.kind.value} jobs")
        files = OutputFiles(gpu, self.storage)
        try:
            stored = await handler.store(job, status.outputs, files)
        except ContentRefused as exc:  # an InvalidInput, but the request's fault
            await files.discard()
            error = JobError(FailureReason.CONTENT, f"the result was refused ({exc.reason.value})")
            return await self.failures.fail(job_id, error)
        except ModerationUnavailable as exc:  # fail-closed moderation could not judge it
            await files.discard()
            error = JobError(FailureReason.INTERNAL, f"the result could not be moderated: {exc}")
            return await self.failures.fail(job_id, error)
        except (InvalidInput, ProviderUnavailable) as exc:
            await files.discard()
            return await self.failures.fail(
                job_id, JobError(FailureReason.INFRASTRUCTURE, str(exc))
            )
        except BaseException:
            await files.discard()
            raise
        try:
            done, recorded = await self._record(job_id, handler, stored)
        except BaseException:
            await files.discard()
            raise
        if not recorded:
            await files.discard()  # it ended meanwhile (cancelled): nothing is kept
            return done
        log.info("job succeeded", extra={"job_id": str(job_id), "assets": len(stored.assets)})
        return done

    async def _record(
        self, job_id: uuid.UUID, handler: OutputHandler, stored: Stored
    ) -> tuple[Job | None, bool]:
        """The success's unit of work: the job, and whether it was recorded (a job found
        ended meanwhile is returned as it is)."""
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job, False
            # lock order: job row, then account, then rows referencing the profile
            # (their foreign-key share locks would otherwise deadlock with another job
            # of the same user settling at the same moment)
            await uow.ledger.lock_account(job.user_id)
            await handler.record(uow, job, stored)
            now = self.clock.now()
            job = await uow.jobs.update(job.succeed(stored.asset_ids, now))
            if job.hold_id is not None:
                await settle_hold(uow, job.hold_id, now)  # a spend of what was held: no move
            job_updated(uow, self.realtime, job)
            track(uow, self.analytics, job_ended(job))
            await uow.job_events.add(
                JobEvent.new(
                    job.id, job.user_id, JobEventKind.SUCCEEDED, "your result is ready", now
                )
            )
            # the outbox rows commit with the success (issue #18)
            await self.notifier.tell(uow, events.job_ended(job, EventKind.JOB_SUCCEEDED), now)
            balance = await uow.ledger.balance(job.user_id)
            if balance < self.notifier.policy.low_balance_below:
                await self.notifier.tell(uow, events.low_balance(job.user_id, balance, now), now)
            await uow.commit()
        return job, True
