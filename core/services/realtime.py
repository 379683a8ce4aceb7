"""What an open app is told live (``ports/realtime.py``): a job's status and progress
(``job.updated``), an account's new balance (``credits.changed``).

Each is an after-commit effect (``uow.after_commit``): only committed state is
announced, and a rolled-back unit announces nothing. Both are best effort (the port
drops rather than fails); the app's truth is still what it reads over HTTP.
"""

from __future__ import annotations

from genstudio.core.model.jobs import Job
from genstudio.core.services.credits import moved_balances
from genstudio.ports.realtime import CREDITS_CHANGED, JOB_UPDATED, RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork


def job_payload(job: Job) -> dict[str, object]:
    """``job.updated``'s payload (docs/api.md, "Realtime")."""
    return {
        "jobId": str(job.id),
        "kind": job.kind.value,
        "status": job.status.value,
        "progress": job.progress,
        "error": None
        if job.error is None
        else {"reason": job.error.reason.value, "message": job.error.message},
    }


def job_updated(
    uow: UnitOfWork, realtime: RealtimePublisher | None, job: Job, before: Job | None = None
) -> None:
    """Announce ``job`` once ``uow`` commits, unless its status and progress are what
    they were ``before`` (a lease renewal changes neither: the app hears nothing)."""
    if realtime is None:
        return
    if before is not None and (before.status, before.progress) == (job.status, job.progress):
        return
    payload = job_payload(job)
    uow.after_commit(lambda: realtime.publish(job.user_id, JOB_UPDATED, payload))


def credits_changed(uow: UnitOfWork, realtime: RealtimePublisher | None) -> None:
    """Announce, once ``uow`` commits, the balance of every account its ledger entries
    moved (``{"balance": n}``), as the last entry left it: no read is added. Register
    it anywhere in the unit, before or after the moves."""
    if realtime is None:
        return

    async def announce() -> None:
        for user_id, balance in moved_balances(uow).items():
            await realtime.publish(user_id, CREDITS_CHANGED, {"balance": balance})

    uow.after_commit(announce)
