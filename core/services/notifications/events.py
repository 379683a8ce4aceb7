"""The events use cases tell, built from what they hold (ids for deep links)."""

from __future__ import annotations

import uuid
from datetime import datetime

from core.model.jobs import Job
from core.model.notifications import Event, EventKind
from core.model.pricing import ModelKind


def job_ended(job: Job, kind: EventKind) -> Event:
    """A job that succeeded, failed or was dead-lettered; a training job is told as
    training (its own category and words)."""
    if job.kind is ModelKind.TRAINING:
        kind = (
            EventKind.TRAINING_SUCCEEDED
            if kind is EventKind.JOB_SUCCEEDED
            else EventKind.TRAINING_FAILED
        )
    returned = 0 if kind in (EventKind.JOB_SUCCEEDED, EventKind.TRAINING_SUCCEEDED) else job.cost
    return Event(
        user_id=job.user_id,
        kind=kind,
        key=f"{kind.value}:{job.id}",
        data={
            "jobId": str(job.id),
            "jobKind": job.kind.value,
            "model": job.model_id,
            "credits": returned,
        },
        group="jobs" if kind is EventKind.JOB_SUCCEEDED else None,
    )


def low_balance(user_id: uuid.UUID, balance: int, now: datetime) -> Event:
    """Once a day at most (the key is the day)."""
    return Event(
        user_id=user_id,
        kind=EventKind.LOW_BALANCE,
        key=f"low_balance:{now.date().isoformat()}",
        data={"balance": balance},
    )


def credits_granted(
    user_id: uuid.UUID, amount: int, source: str, entry_id: uuid.UUID, reference: str
) -> Event:
    return Event(
        user_id=user_id,
        kind=EventKind.CREDITS_GRANTED,
        key=f"credits_granted:{entry_id}",
        data={"amount": amount, "source": source, "entryId": str(entry_id), "reference": reference},
    )


def credits_clawed_back(user_id: uuid.UUID, amount: int, reference: str) -> Event:
    return Event(
        user_id=user_id,
        kind=EventKind.CREDITS_CLAWED_BACK,
        key=f"credits_clawed_back:{reference}",
        data={"amount": amount, "reference": reference},
    )
