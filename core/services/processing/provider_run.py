"""One attempt at a provider: submit the job (once), then poll it to its end.

A job already at its provider (taken over from a worker that died or stopped) is
polled again, never submitted twice. An attempt times out its kind's timeout after
the provider accepted it (``Job.submitted_at``), however many workers followed it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from genstudio.core.model.jobs import FailureReason, Job, JobError, JobStatus
from genstudio.core.model.pricing import Catalog
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.model.routing import ProviderRouter
from genstudio.core.services.processing.completion import Completion
from genstudio.core.services.processing.failures import Failures
from genstudio.core.services.processing.leases import Finished, LeaseLost, Leases
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    Pending,
    ProviderInput,
    ProviderUnavailable,
)
from genstudio.ports.storage import MediaStorage, ObjectNotFound

log = logging.getLogger("genstudio.jobs")

#: the least lifetime of the signed URLs of a job's inputs handed to a provider
INPUT_URL_SECONDS = 3600
#: consecutive failed polls tolerated before the provider is judged broken
MAX_POLL_ERRORS = 5


class ProviderRun:
    def __init__(
        self,
        *,
        providers: Mapping[str, GpuProvider],
        storage: MediaStorage,
        clock: Clock,
        catalog: Catalog,
        policy: QueuePolicy,
        router: ProviderRouter,
        leases: Leases,
        failures: Failures,
        completion: Completion,
        poll_interval: float,
    ) -> None:
        self.providers = providers
        self.storage = storage
        self.clock = clock
        self.catalog = catalog
        self.policy = policy
        self.router = router
        self.leases = leases
        self.failures = failures
        self.completion = completion
        self.poll_interval = poll_interval

    async def follow(self, job: Job) -> Job | None:
        """Run the leased job's attempt to its end: the job as it ended, None when
        another worker took it over meanwhile."""
        gpu = self.providers.get(job.provider or "")
        if gpu is None:
            # taken over from a worker configured with a provider this one lacks:
            # its work there cannot be followed, so the attempt counts as lost
            return await self.failures.fail(
                job.id,
                JobError(FailureReason.INFRASTRUCTURE, f"provider {job.provider} is not available"),
            )
        try:
            if job.provider_job_id is None:
                job = await self._submit(job, gpu)
                if job.status.terminal or job.provider_job_id is None:
                    return job
            return await self._poll(job, gpu)
        except LeaseLost:
            log.warning("lease lost; another worker has the job", extra={"job_id": str(job.id)})
            return None
        except Exception as exc:
            log.exception("job processing crashed", extra={"job_id": str(job.id)})
            return await self.failures.crashed(job.id, exc)

    async def _submit(self, job: Job, gpu: GpuProvider) -> Job:
        """Submit the job and record the provider's id for it, shielded from
        cancellation: a stop that cut the two apart would leave work running (and paid
        for) at the provider that nobody follows, and the next attempt would start it
        again. The submission is bounded by the provider client's own timeouts."""
        submission = asyncio.ensure_future(self._submit_and_record(job, gpu))
        # a submission may take longer than the lease (timeouts, a provider's 429s):
        # renewed meanwhile, or another worker would take the job over and submit again
        keeper = asyncio.ensure_future(self.leases.keep(job.id))
        try:
            return await asyncio.shield(submission)
        except asyncio.CancelledError:
            await asyncio.wait({submission})  # a second cancellation leaves it running
            raise
        finally:
            keeper.cancel()

    async def _submit_and_record(self, job: Job, gpu: GpuProvider) -> Job:
        try:
            provider_job_id = await gpu.submit(await self.request(job, gpu))
        except ObjectNotFound as exc:  # an upload the job reads is gone: it cannot run
            failed = await self.failures.fail(
                job.id, JobError(FailureReason.INTERNAL, f"an input of the job is missing: {exc}")
            )
            return failed or job
        except ProviderUnavailable as exc:
            return await self.failures.not_taken(job, gpu, str(exc))

        def accept(current: Job) -> Job:
            return current.accepted_by_provider(provider_job_id, self.clock.now())

        try:
            return await self.leases.change(job.id, accept)
        except (LeaseLost, Finished):
            await gpu.cancel(provider_job_id)  # cancelled meanwhile, or someone else's now
            raise LeaseLost() from None

    async def request(self, job: Job, gpu: GpuProvider) -> GpuRequest:
        """The provider's request: the job's inputs in order, each as a signed URL, and
        inline too for a provider that declares ``inline_inputs``; the attempt's time
        limit. Raises ObjectNotFound when an upload is gone."""
        time_limit = self.policy.timeouts.seconds_for(job.kind.value)
        ttl = max(INPUT_URL_SECONDS, round(time_limit) + 600)  # outlives the job's run
        inputs = [
            ProviderInput(
                name=given.name,
                url=await self.storage.signed_url(given.storage_key, ttl),
                content_type=given.content_type,
                data=await self.storage.get(given.storage_key) if gpu.inline_inputs else None,
            )
            for given in job.params.inputs()
        ]
        return GpuRequest(
            job_id=job.id,
            provider_model=self.catalog.get(job.model_id, job.kind).provider_model,
            params=job.params,
            inputs=tuple(inputs),
            time_limit=time_limit,
        )

    async def _poll(self, job: Job, gpu: GpuProvider) -> Job | None:
        provider_job_id = job.provider_job_id
        assert provider_job_id is not None
        time_limit = self.policy.timeouts.seconds_for(job.kind.value)
        # the timeout runs from when the provider accepted this attempt (stored with the
        # job), not from when this worker began to poll: a worker taking the job over
        # (its first one died, its lease ran out, it handed the job back on stopping)
        # follows the same work and must not give it a new allowance, or a job stuck at
        # its provider would outlive the timeout for as long as workers come and go.
        # A job accepted by a release before migration 0009 has no time: it is timed
        # from here, as it was then.
        started = job.submitted_at or self.clock.now()
        errors = 0
        while True:
            try:
                status = await gpu.poll(provider_job_id)
                errors = 0
            except ProviderUnavailable as exc:
                errors += 1
                if errors >= MAX_POLL_ERRORS:
                    await gpu.cancel(provider_job_id)
                    return await self.failures.fail(
                        job.id, JobError(FailureReason.INFRASTRUCTURE, f"polling failed: {exc}")
                    )
                status = Pending(progress=job.progress, started=job.status is JobStatus.RUNNING)
            if not isinstance(status, Pending):
                return await self._ended(job, gpu, status)
            try:
                job = await self.leases.report(job, status)
            except Finished as finished:
                await gpu.cancel(provider_job_id)  # the user cancelled: stop paying for it
                return finished.job
            if (self.clock.now() - started).total_seconds() >= time_limit:
                await gpu.cancel(provider_job_id)
                return await self.failures.fail(
                    job.id, JobError(FailureReason.TIMEOUT, f"no result after {time_limit:.0f}s")
                )
            await self.clock.sleep(self.poll_interval)

    async def _ended(
        self, job: Job, gpu: GpuProvider, status: Completed | Failed | Cancelled
    ) -> Job | None:
        """The provider says the work ended: stored and recorded, or a failed attempt."""
        if isinstance(status, Completed):
            self.router.record_success(gpu.name, self.clock.now())
            return await self.completion.succeed(job.id, gpu, status)
        if isinstance(status, Failed):
            return await self.failures.fail(job.id, status.error)
        return await self.failures.fail(
            job.id, JobError(FailureReason.INFRASTRUCTURE, "the provider cancelled the job")
        )
