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
Either way its hold is released exactly once. What a success stores is decided by
the output handler of the job's kind (``outputs.py``).

The parts, one module each: ``claiming`` (the claim and the lease it takes),
``leases`` (changes made only while holding one), ``provider_run`` (submit and
poll), ``completion`` and ``outputs`` (success), ``failures`` (retry, dead letter),
``stopping`` (graceful stop). This class wires them and is what workers call.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from genstudio.core.model.ids import new_id
from genstudio.core.model.jobs import Job, JobError
from genstudio.core.model.pricing import Catalog
from genstudio.core.model.queueing import QueuePolicy
from genstudio.core.model.routing import ProviderRouter
from genstudio.core.services.analytics import Tracker
from genstudio.core.services.moderation.service import Moderation
from genstudio.core.services.notifications.emit import ROWS_ONLY, Notifier
from genstudio.core.services.processing.claiming import Claims
from genstudio.core.services.processing.completion import Completion
from genstudio.core.services.processing.failures import Failures
from genstudio.core.services.processing.leases import Leases
from genstudio.core.services.processing.outputs import OutputHandlers, job_outputs
from genstudio.core.services.processing.provider_run import ProviderRun
from genstudio.core.services.processing.stopping import HandBack, InFlight
from genstudio.ports.ai import Captioner
from genstudio.ports.clock import Clock
from genstudio.ports.gpu import GpuProvider
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.storage import MediaStorage
from genstudio.ports.unit_of_work import UnitOfWorkFactory


class JobProcessor:
    """A worker's job processing: ``process_next``/``drain`` for a kind's wake-up,
    ``stop`` for a graceful stop.

    ``outputs`` maps each job kind to its output handler (default: every kind's,
    ``job_outputs``, checking outputs with ``moderation`` where given);
    ``policy.timeouts`` gives each kind's timeout.
    """

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
        moderation: Moderation | None = None,
        outputs: OutputHandlers | None = None,
        worker_id: str | None = None,
        poll_interval: float = 0.5,
        notifier: Notifier = ROWS_ONLY,
        realtime: RealtimePublisher | None = None,
        analytics: Tracker | None = None,
    ) -> None:
        providers = dict(gpu) if isinstance(gpu, Mapping) else {gpu.name: gpu}
        router = router or ProviderRouter({}, default=list(providers))
        self.policy = policy or QueuePolicy()
        self.worker_id = worker_id or f"worker-{new_id().hex[:12]}"
        # ``realtime``: job.updated and credits.changed, told after each commit
        leases = Leases(
            uow_factory, clock, self.policy, self.worker_id, realtime=realtime, notifier=notifier
        )
        self._failures = Failures(
            uow_factory,
            clock,
            self.policy,
            router,
            providers,
            leases,
            notifier,
            realtime=realtime,
            analytics=analytics,  # a job's end, after commit (issue #20)
        )
        self._claims = Claims(uow_factory, clock, self.policy, router, leases, realtime=realtime)
        self._run = ProviderRun(
            providers=providers,
            storage=storage,
            clock=clock,
            catalog=catalog,
            policy=self.policy,
            router=router,
            leases=leases,
            failures=self._failures,
            completion=Completion(
                uow_factory,
                clock,
                storage,
                job_outputs(clock, captioner, moderation) if outputs is None else outputs,
                self._failures,
                notifier,
                realtime=realtime,
                analytics=analytics,
            ),
            poll_interval=poll_interval,
        )
        self._in_flight = InFlight()
        self._hand_back = HandBack(
            uow_factory, clock, providers, self._failures, self.worker_id, realtime=realtime
        )

    async def process_next(self, kind: str) -> Job | None:
        """Claim the most urgent due (or abandoned) job of ``kind`` and run it to its end.

        Returns the job as it ended (as it was left when no provider could take it,
        or None when another worker took it over meanwhile); None when nothing was
        claimable or this worker is stopping.
        """
        if self._in_flight.stopping:
            return None
        job = await self._claims.claim(kind)
        if job is None:
            return None
        if job.status.terminal or job.lease_owner != self.worker_id:
            return job  # claimed only to be put back (no provider available)
        leased = job
        return await self._in_flight.run(job.id, lambda: self._run.follow(leased))

    async def drain(self, kind: str, *, budget: int = 10) -> int:
        """Run due jobs of ``kind`` back to back until none is claimable or ``budget``
        jobs ran (then the next wake-up goes on). Returns how many ran."""
        done = 0
        while done < budget and await self.process_next(kind) is not None:
            done += 1
        return done

    async def fail(self, job_id: uuid.UUID, error: JobError) -> Job | None:
        """A failed attempt: retried, dead-lettered or failed (``Failures.fail``)."""
        return await self._failures.fail(job_id, error)

    def stop_claiming(self) -> None:
        """Claim no more jobs (a graceful stop has begun); those in flight run on."""
        self._in_flight.stopping = True

    async def stop(self, grace: float) -> int:
        """A graceful stop: claim nothing more, give the jobs in flight ``grace``
        seconds to end, then cancel the tasks running them and hand each job back
        (``stopping.py``). Returns how many jobs were handed back."""
        return await self._hand_back.all(await self._in_flight.interrupt(grace))
