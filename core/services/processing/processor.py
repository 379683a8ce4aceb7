"""Running jobs at GPU providers (the worker side).

Postgres is the queue's truth. A worker *claims* the next due job of a kind (or an
abandoned one whose worker died) under a row lock, takes a lease on it, submits it
to a provider chosen by the router, and polls until it ends, renewing the lease.
Every step is idempotent and keyed by the job id: a redelivered message, a second
worker or a restart after a crash finds the job's state in the database and goes on
from there; a job already at a provider is polled again, never submitted twice.

Failures: a content refusal fails the job at once; a provider that breaks or times
out sends the job back to the queue with exponential backoff (to another provider
when one is available), until its attempts are used up and it is dead-lettered.
Either way its hold is released exactly once. An attempt times out ``timeout``
seconds after its provider accepted it (``Job.submitted_at``), however many workers
followed it meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from core.model.errors import ConcurrencyConflict, InvalidInput
from core.model.events import JobEvent, JobEventKind
from core.model.ids import new_id
from core.model.job_params import VideoParams
from core.model.jobs import FailureReason, Job, JobError, JobStatus
from core.model.media import (
    MediaAsset,
    MediaKind,
    mp4_info,
    png_dimensions,
    poster_key,
    sniff_content_type,
    storage_key,
)
from core.model.pricing import Catalog, ModelKind
from core.model.queueing import QueuePolicy
from core.model.routing import ProviderRouter, is_provider_fault
from core.services.credits import release_hold, settle_hold
from core.services.generation.captions import caption_of
from ports.ai import Captioner
from ports.clock import Clock
from ports.gpu import (
    Cancelled,
    Completed,
    Failed,
    GpuProvider,
    GpuRequest,
    OutputRole,
    Pending,
    ProviderOutput,
    ProviderUnavailable,
)
from ports.storage import MediaStorage, ObjectNotFound
from ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

log = logging.getLogger("genstudio.jobs")

MAX_OUTPUT_BYTES = 50 * 1024 * 1024
#: how far a provider's video may be off the asked duration (a model's frame rounding)
DURATION_TOLERANCE = 0.5
#: the least lifetime of the signed URLs of a job's inputs handed to a provider
INPUT_URL_SECONDS = 3600
#: consecutive failed polls tolerated before the provider is judged broken
MAX_POLL_ERRORS = 5
#: how long a job waits when no provider is available (all breakers open)
NO_PROVIDER_DELAY = timedelta(seconds=5)


class LeaseLost(Exception):
    """Another worker took the job over (this one was presumed dead): stop touching it."""


class JobProcessor:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        gpu: GpuProvider | Mapping[str, GpuProvider],
        storage: MediaStorage,
        clock: Clock,
        catalog: Catalog,
        *,
        router: ProviderRouter | None = None,
        policy: QueuePolicy | None = None,
        captioner: Captioner | None = None,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        timeout: float = 900.0,
    ) -> None:
        self.uow_factory = uow_factory
        self.providers: dict[str, GpuProvider] = (
            dict(gpu) if isinstance(gpu, Mapping) else {gpu.name: gpu}
        )
        self.router = router or ProviderRouter({}, default=list(self.providers))
        self.storage = storage
        self.clock = clock
        self.catalog = catalog
        self.policy = policy or QueuePolicy()
        self.captioner = captioner
        self.worker_id = worker_id or f"worker-{new_id().hex[:12]}"
        self.poll_interval = poll_interval
        self.timeout = timeout
        self._stopping = False
        self._running: dict[uuid.UUID, asyncio.Task[object]] = {}  # job -> task running it
        self._interrupted: set[uuid.UUID] = set()
        self._idle = asyncio.Event()  # set while no job is running
        self._idle.set()

    # --- stopping ---------------------------------------------------------------------

    def stop_claiming(self) -> None:
        """Claim no more jobs (a graceful stop has begun); those in flight run on."""
        self._stopping = True

    async def stop(self, grace: float) -> int:
        """A graceful stop: claim nothing more, give the jobs in flight ``grace``
        seconds to end, then cancel the tasks running them and hand each job back.

        A job left at a provider that outlives this process (``GpuProvider.durable``)
        keeps going there: its lease ends now and another worker takes it over and polls
        it on. Any other (not yet submitted, or rendering in this process) goes back to
        the queue, due now, its attempt given back: a deploy is not a failure. Returns
        how many jobs were handed back.
        """
        self.stop_claiming()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), grace)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        interrupted, self._interrupted = self._interrupted, set()
        handed = 0
        for job_id in interrupted:
            try:
                handed += await self._hand_back(job_id)
            except Exception:  # the lease runs out, and another worker takes it over then
                log.exception("could not hand the job back", extra={"job_id": str(job_id)})
        return handed

    async def _hand_back(self, job_id: uuid.UUID) -> int:
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal or job.lease_owner != self.worker_id:
                return 0
            gpu = self.providers.get(job.provider or "")
            if job.provider_job_id is not None and gpu is not None and gpu.durable:
                await uow.jobs.update(job.lease_given_up(now))
                how = "left at its provider for another worker to follow"
            else:
                await self._cancel_at_provider(job)  # its work ends with this process
                await uow.jobs.update(job.handed_back(now))
                how = "back in the queue, its attempt given back"
            await uow.commit()
        log.info("job handed back on stopping", extra={"job_id": str(job_id), "how": how})
        return 1

    # --- claiming ---------------------------------------------------------------------

    def _lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.policy.lease_seconds)

    async def process_next(self, kind: str) -> Job | None:
        """Claim the most urgent due (or abandoned) job of ``kind`` and run it to its end.

        Returns the job as it ended, or None when nothing was claimable.
        """
        if self._stopping:
            return None
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.claim_next(kind, now=now, policy=self.policy)
            if job is None:
                return None
            job = await self._take(uow, job, now)
            await uow.commit()
        return await self._run(job)

    async def drain(self, kind: str, *, budget: int = 10) -> int:
        """Run due jobs of ``kind`` back to back until none is claimable or ``budget``
        jobs ran (then the next wake-up goes on). Returns how many ran."""
        done = 0
        while done < budget and await self.process_next(kind) is not None:
            done += 1
        return done

    async def process(self, job_id: uuid.UUID) -> Job | None:
        """Run this job if it is claimable (due, or abandoned by a dead worker).

        A job another live worker holds, a job waiting for its retry time and a
        finished job are returned as they are: a redelivered message is harmless.
        """
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if self._stopping or job is None or not (job.is_due(now) or job.is_abandoned(now)):
                return job
            job = await self._take(uow, job, now)
            await uow.commit()
        return await self._run(job)

    async def _take(self, uow: UnitOfWork, job: Job, now: datetime) -> Job:
        until = self._lease_until(now)
        if job.status is JobStatus.QUEUED:
            provider = self._choose(job, now)
            if provider is None:
                # every provider is down or tripped: wait, without using an attempt
                log.warning("no GPU provider available", extra={"job_id": str(job.id)})
                return await uow.jobs.update(job.postpone(now + NO_PROVIDER_DELAY, now))
            job = job.dispatch(provider, now, lease_owner=self.worker_id, lease_until=until)
            log.info(
                "job dispatched",
                extra={"job_id": str(job.id), "provider": provider, "attempt": job.attempts},
            )
        else:
            log.warning(
                "taking over an abandoned job",
                extra={"job_id": str(job.id), "previous_owner": job.lease_owner},
            )
            job = job.leased(self.worker_id, until, now)
        return await uow.jobs.update(job)

    def _choose(self, job: Job, now: datetime) -> str | None:
        """The router's pick; after a provider fault, another provider if one is available."""
        failed_on = (
            (job.provider,)
            if job.provider is not None and job.error is not None and is_provider_fault(job.error)
            else ()
        )
        return self.router.choose(job.model_id, now, exclude=failed_on) or (
            self.router.choose(job.model_id, now) if failed_on else None
        )

    def _gpu(self, job: Job) -> GpuProvider:
        assert job.provider is not None
        return self.providers[job.provider]

    # --- running ----------------------------------------------------------------------

    async def _run(self, job: Job) -> Job | None:
        if job.status.terminal or job.lease_owner != self.worker_id:
            return job  # claimed only to be put back (no provider available)
        task = asyncio.current_task()
        assert task is not None  # a coroutine always runs in a task
        self._running[job.id] = task
        self._idle.clear()
        try:
            return await self._follow(job)
        except asyncio.CancelledError:
            self._interrupted.add(job.id)  # still leased to this worker: stop() hands it back
            raise
        finally:
            self._running.pop(job.id, None)
            if not self._running:
                self._idle.set()

    async def _follow(self, job: Job) -> Job | None:
        if job.provider not in self.providers:
            # taken over from a worker configured with a provider this one lacks:
            # its work there cannot be followed, so the attempt counts as lost
            return await self.fail(
                job.id,
                JobError(FailureReason.INFRASTRUCTURE, f"provider {job.provider} is not available"),
            )
        try:
            if job.provider_job_id is None:
                job = await self._submit(job)
                if job.status.terminal or job.provider_job_id is None:
                    return job
            return await self._poll(job)
        except LeaseLost:
            log.warning("lease lost; another worker has the job", extra={"job_id": str(job.id)})
            return None
        except Exception as exc:
            # a fault of ours or of an adapter (a bug, an answer it did not expect): the
            # attempt fails, and the credits come back. Left to its lease, the job would
            # be taken over and crash again and again, its credits held for ever.
            log.exception("job processing crashed", extra={"job_id": str(job.id)})
            return await self._crashed(job.id, exc)

    async def _crashed(self, job_id: uuid.UUID, exc: Exception) -> Job | None:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is not None:  # its work at the provider is not followed any more
            await self._cancel_at_provider(job)
        error = JobError(FailureReason.INTERNAL, f"processing failed ({type(exc).__name__})")
        return await self.fail(job_id, error)

    async def _cancel_at_provider(self, job: Job) -> None:
        """Stop the job's work at its provider, if it has any there; best effort (a
        failure is logged): the job is being put back or failed either way."""
        if job.provider_job_id is None or job.provider not in self.providers:
            return
        try:
            await self._gpu(job).cancel(job.provider_job_id)
        except Exception:
            log.exception("cancelling at the provider failed", extra={"job_id": str(job.id)})

    async def _submit(self, job: Job) -> Job:
        """Submit the job and record the provider's id for it, shielded from
        cancellation: a stop that cut the two apart would leave work running (and paid
        for) at the provider that nobody follows, and the next attempt would start it
        again. The submission is bounded by the provider client's own timeouts."""
        submission = asyncio.ensure_future(self._submit_and_record(job))
        # a submission may take longer than the lease (timeouts, a provider's 429s):
        # renewed meanwhile, or another worker would take the job over and submit again
        keeper = asyncio.ensure_future(self._keep_lease(job.id))
        try:
            return await asyncio.shield(submission)
        except asyncio.CancelledError:
            await asyncio.wait({submission})  # a second cancellation leaves it running
            raise
        finally:
            keeper.cancel()

    async def _keep_lease(self, job_id: uuid.UUID) -> None:
        """Renew the job's lease every third of it (in real time) until cancelled."""

        def renew(job: Job) -> Job:
            now = self.clock.now()
            return job.leased(self.worker_id, self._lease_until(now), now)

        while True:
            await asyncio.sleep(self.policy.lease_seconds / 3)
            try:
                await self._change(job_id, renew)
            except (LeaseLost, _Finished):
                return
            except Exception:  # the database, briefly: the next beat tries again
                log.exception("renewing the lease failed", extra={"job_id": str(job_id)})

    async def _submit_and_record(self, job: Job) -> Job:
        gpu = self._gpu(job)
        try:
            provider_job_id = await gpu.submit(await self._request(job, gpu))
        except ObjectNotFound as exc:  # an upload the job reads is gone: it cannot run
            failed = await self.fail(
                job.id, JobError(FailureReason.INTERNAL, f"an input of the job is missing: {exc}")
            )
            return failed or job
        except ProviderUnavailable as exc:
            return await self._not_taken(job, str(exc))

        def accept(current: Job) -> Job:
            return current.accepted_by_provider(provider_job_id, self.clock.now())

        try:
            return await self._change(job.id, accept)
        except (LeaseLost, _Finished):
            await gpu.cancel(provider_job_id)  # cancelled meanwhile, or someone else's now
            raise LeaseLost() from None

    async def _poll(self, job: Job) -> Job | None:
        gpu = self._gpu(job)
        provider_job_id = job.provider_job_id
        assert provider_job_id is not None
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
                if errors < MAX_POLL_ERRORS:
                    status = Pending(progress=job.progress, started=job.status is JobStatus.RUNNING)
                else:
                    await gpu.cancel(provider_job_id)
                    return await self.fail(
                        job.id, JobError(FailureReason.INFRASTRUCTURE, f"polling failed: {exc}")
                    )
            if isinstance(status, Completed):
                self.router.record_success(gpu.name, self.clock.now())
                return await self._succeed(job.id, status)
            if isinstance(status, Failed):
                return await self.fail(job.id, status.error)
            if isinstance(status, Cancelled):
                return await self.fail(
                    job.id, JobError(FailureReason.INFRASTRUCTURE, "the provider cancelled the job")
                )
            try:
                job = await self._progress(job, status)
            except _Finished as finished:
                await gpu.cancel(provider_job_id)  # the user cancelled: stop paying for it
                return finished.job
            if (self.clock.now() - started).total_seconds() >= self.timeout:
                await gpu.cancel(provider_job_id)
                return await self.fail(
                    job.id, JobError(FailureReason.TIMEOUT, f"no result after {self.timeout:.0f}s")
                )
            await self.clock.sleep(self.poll_interval)

    async def _progress(self, job: Job, status: Pending) -> Job:
        """Record progress and renew the lease when it is half spent."""
        now = self.clock.now()
        renew = job.lease_expires_at is None or (
            (job.lease_expires_at - now).total_seconds() < self.policy.lease_seconds / 2
        )
        moves = status.started and (
            job.status is JobStatus.DISPATCHED or status.progress > job.progress
        )
        if not (renew or moves):
            return job

        def change(current: Job) -> Job:
            t = self.clock.now()
            if moves:
                current = current.report_progress(status.progress, t)
            return current.leased(self.worker_id, self._lease_until(t), t)

        return await self._change(job.id, change)

    async def _change(self, job_id: uuid.UUID, change: Callable[[Job], Job]) -> Job:
        """Apply ``change`` to the locked job if this worker still holds it."""
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None:
                raise LeaseLost()
            if job.status.terminal:
                raise _Finished(job)
            if job.lease_owner != self.worker_id:
                raise LeaseLost()
            try:
                job = await uow.jobs.update(change(job))
            except ConcurrencyConflict:
                raise LeaseLost() from None
            await uow.commit()
            return job

    async def _succeed(self, job_id: uuid.UUID, status: Completed) -> Job | None:
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id)
        if job is None or job.status.terminal:
            return job
        stored: list[MediaAsset] = []
        results = [o for o in status.outputs if o.role is OutputRole.RESULT]
        posters = [o for o in status.outputs if o.role is OutputRole.POSTER]
        try:
            if not results:
                raise InvalidInput("the provider completed the job without a result")
            for index, output in enumerate(results):
                poster = posters[index] if index < len(posters) else None
                stored.append(await self._store(job, output, poster))
        except (InvalidInput, ProviderUnavailable) as exc:
            await self._discard(stored)
            return await self.fail(job_id, JobError(FailureReason.INFRASTRUCTURE, str(exc)))
        try:
            async with self.uow_factory() as uow:
                job = await uow.jobs.get(job_id, lock=True)
                if job is None or job.status.terminal:
                    await self._discard(stored)
                    return job
                # lock order: job row, then account, then rows referencing the
                # profile (their foreign-key share locks would otherwise deadlock
                # with another job of the same user settling at the same moment)
                await uow.ledger.lock_account(job.user_id)
                for asset in stored:
                    await uow.media.add(asset)
                now = self.clock.now()
                job = await uow.jobs.update(job.succeed(tuple(a.id for a in stored), now))
                if job.hold_id is not None:
                    await settle_hold(uow, job.hold_id, now)
                await uow.job_events.add(
                    JobEvent.new(
                        job.id, job.user_id, JobEventKind.SUCCEEDED, "your result is ready", now
                    )
                )
                await uow.commit()
        except BaseException:
            await self._discard(stored)
            raise
        log.info("job succeeded", extra={"job_id": str(job.id), "assets": len(stored)})
        return job

    async def _request(self, job: Job, gpu: GpuProvider) -> GpuRequest:
        """The provider's request: the job's uploads as signed URLs, and inline too for a
        provider in this process (``inline_inputs``). Raises ObjectNotFound."""
        keys = job.params.input_keys()
        ttl = max(INPUT_URL_SECONDS, round(self.timeout) + 600)  # outlives the job's run
        inputs = {name: await self.storage.signed_url(key, ttl) for name, key in keys.items()}
        inline = bool(getattr(gpu, "inline_inputs", False))
        input_data = (
            {name: await self.storage.get(key) for name, key in keys.items()} if inline else {}
        )
        return GpuRequest(
            job_id=job.id,
            provider_model=self.catalog.get(job.model_id, job.kind).provider_model,
            params=job.params,
            inputs=inputs,
            input_data=input_data,
        )

    async def _fetch(self, job: Job, output: ProviderOutput, expected: str) -> bytes:
        data = await self._gpu(job).fetch(output)
        if len(data) > MAX_OUTPUT_BYTES:
            raise InvalidInput(f"the provider's output is larger than {MAX_OUTPUT_BYTES} bytes")
        actual = sniff_content_type(data)
        if actual != expected:
            raise InvalidInput(
                f"the provider's {output.role.value} is {actual or 'of an unknown type'}, "
                f"not {expected}"
            )
        return data

    async def _store(
        self, job: Job, output: ProviderOutput, poster: ProviderOutput | None = None
    ) -> MediaAsset:
        """Check one result (its type by magic bytes, its size, a video's duration and
        poster frame), store it, and describe it. Raises InvalidInput for an output
        that is not what the job asked for."""
        if job.kind is ModelKind.VIDEO:
            return await self._store_video(job, output, poster)
        data = await self._fetch(job, output, "image/png")
        size = png_dimensions(data)
        if size is None:
            raise InvalidInput("the provider's output is not a PNG image")
        media_id = new_id()
        key = storage_key(job.user_id, media_id, "png")
        await self.storage.put(key, data, "image/png")
        return MediaAsset(
            caption=await caption_of(self.captioner, data, "image/png"),
            id=media_id,
            user_id=job.user_id,
            kind=MediaKind.IMAGE,
            storage_key=key,
            content_type="image/png",
            width=size[0],
            height=size[1],
            byte_size=len(data),
            prompt=job.params.prompt,
            model_id=job.model_id,
            job_id=job.id,
            created_at=self.clock.now(),
        )

    async def _store_video(
        self, job: Job, output: ProviderOutput, poster: ProviderOutput | None
    ) -> MediaAsset:
        data = await self._fetch(job, output, "video/mp4")
        info = mp4_info(data)
        if info is None or info.width <= 0 or info.height <= 0:
            raise InvalidInput("the provider's MP4 has no readable video track")
        params = job.params
        if (
            isinstance(params, VideoParams)
            and abs(info.duration_seconds - params.duration_seconds) > DURATION_TOLERANCE
        ):
            raise InvalidInput(
                f"the provider's video lasts {info.duration_seconds:.2f}s, "
                f"not the {params.duration_seconds}s asked for"
            )
        if poster is None:
            raise InvalidInput("the provider's video came without a poster frame")
        frame = await self._fetch(job, poster, "image/png")
        if png_dimensions(frame) is None:
            raise InvalidInput("the provider's poster frame is not a PNG image")
        media_id = new_id()
        key = storage_key(job.user_id, media_id, "mp4")
        thumbnail = poster_key(key)
        await self.storage.put(thumbnail, frame, "image/png")
        try:
            await self.storage.put(key, data, "video/mp4")
        except BaseException:
            await self.storage.delete(thumbnail)
            raise
        return MediaAsset(
            id=media_id,
            user_id=job.user_id,
            kind=MediaKind.VIDEO,
            storage_key=key,
            content_type="video/mp4",
            width=info.width,
            height=info.height,
            byte_size=len(data),
            prompt=params.prompt,
            model_id=job.model_id,
            job_id=job.id,
            created_at=self.clock.now(),
            duration_seconds=info.duration_seconds,
            thumbnail_key=thumbnail,
            caption=await caption_of(self.captioner, frame, "image/png"),  # from its poster
        )

    async def _discard(self, assets: list[MediaAsset]) -> None:
        for asset in assets:
            await self.storage.delete(asset.storage_key)
            if asset.thumbnail_key is not None:
                await self.storage.delete(asset.thumbnail_key)

    async def _not_taken(self, job: Job, reason: str) -> Job:
        """The provider could not be reached to take the job: back to the queue without
        spending an attempt. The provider's breaker counts the failure, so after a few
        the router stops choosing it: jobs fail over, or wait for it to come back."""
        now = self.clock.now()
        self.router.record_failure(self._gpu(job).name, now)
        error = JobError(FailureReason.INFRASTRUCTURE, f"provider unavailable: {reason}")
        retry_at = self.policy.retry.next_attempt_at(1, now)

        def back(current: Job) -> Job:
            return current.requeue(error, self.clock.now(), retry_at=retry_at, count_attempt=False)

        try:
            job = await self._change(job.id, back)
        except _Finished as finished:
            return finished.job
        log.warning(
            "provider unavailable; job back in the queue",
            extra={"job_id": str(job.id), "provider": error.message[:200]},
        )
        return job

    async def fail(self, job_id: uuid.UUID, error: JobError) -> Job | None:
        """A failed attempt: retry later, dead-letter, or fail; the hold is released once.

        Retried (back to the queue with backoff) when the provider was at fault and
        attempts remain; dead-lettered when they are used up; failed for good on a
        content refusal or an internal error.
        """
        now = self.clock.now()
        async with self.uow_factory() as uow:
            job = await uow.jobs.get(job_id, lock=True)
            if job is None or job.status.terminal:
                return job
            if job.provider is not None:
                self.router.record_error(job.provider, error, now)
            retry = self.policy.retry
            if retry.retryable(error.reason) and job.attempts < retry.attempts_for(job.kind.value):
                at = retry.next_attempt_at(job.attempts, now)
                job = await uow.jobs.update(job.requeue(error, now, retry_at=at))
                event, message = JobEventKind.RETRYING, f"attempt {job.attempts} failed; retrying"
            else:
                dead = retry.retryable(error.reason)
                job = await uow.jobs.update(
                    job.dead_letter(error, now) if dead else job.fail(error, now)
                )
                if job.hold_id is not None:
                    await release_hold(uow, job.hold_id, now)
                event = JobEventKind.DEAD_LETTERED if dead else JobEventKind.FAILED
                message = (
                    f"failed after {job.attempts} attempts; your credits were returned"
                    if dead
                    else f"{error.message}; your credits were returned"
                )
            await uow.job_events.add(JobEvent.new(job.id, job.user_id, event, message, now))
            await uow.commit()
        log.warning(
            "job attempt failed" if event is JobEventKind.RETRYING else "job failed",
            extra={
                "job_id": str(job.id),
                "reason": error.reason.value,
                "error": error.message,
                "outcome": event.value,
                "attempt": job.attempts,
                "next_attempt_at": job.next_attempt_at.isoformat() if job.next_attempt_at else None,
            },
        )
        return job


class _Finished(Exception):
    """The job ended (e.g. the user cancelled it) while this worker was on it."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} is {job.status}")
        self.job = job
