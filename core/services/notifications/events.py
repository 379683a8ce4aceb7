"""The events use cases tell, built from what they hold (ids for deep links)."""

from __future__ import annotations

import uuid
from datetime import datetime

from genstudio.core.model.jobs import Job
from genstudio.core.model.notifications import Data, Event, EventKind
from genstudio.core.model.pricing import ModelKind
from genstudio.core.model.purchases.entitlements import Entitlement
from genstudio.core.model.purchases.store_events import EntitlementStatus


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


#: what a subscription's change tells, by the status it changed to
_SUBSCRIPTION_NEWS = {
    EntitlementStatus.GRACE_PERIOD: EventKind.SUBSCRIPTION_IN_GRACE,
    EntitlementStatus.BILLING_RETRY: EventKind.SUBSCRIPTION_IN_GRACE,
    EntitlementStatus.ON_HOLD: EventKind.SUBSCRIPTION_IN_GRACE,
    EntitlementStatus.AUTO_RENEW_OFF: EventKind.SUBSCRIPTION_EXPIRING,
    EntitlementStatus.EXPIRED: EventKind.SUBSCRIPTION_EXPIRED,
}


def subscription_changed(before: Entitlement | None, after: Entitlement) -> Event | None:
    """What the store's news about a subscription tells its user, if anything: a
    renewal (a new payment, entitled), a failed renewal (grace, billing retry, hold),
    auto-renew turned off (it ends at the period's end), the end. Keys name the
    payment or the period, so a redelivered snapshot tells nothing twice."""
    if before is None:
        return None  # a new subscription: its purchase is told as credits granted
    chain = f"{after.store}:{after.original_transaction_id}"
    data: Data = {
        "plan": after.product_id,
        "productId": after.product_id,
        "store": str(after.store),
        "periodEnd": after.period_end.isoformat(),
    }
    renewed = after.latest_transaction_id != before.latest_transaction_id
    paid_up = (EntitlementStatus.ACTIVE, EntitlementStatus.AUTO_RENEW_OFF)
    if renewed and after.status in paid_up:
        kind, key = EventKind.SUBSCRIPTION_RENEWED, f"{chain}:{after.latest_transaction_id}"
    elif before.auto_renew and not after.auto_renew and after.status in paid_up:
        # the user turned auto-renew off: it ends at the period's end
        kind = EventKind.SUBSCRIPTION_EXPIRING
        key = f"{chain}:{after.period_end.isoformat()}"
    elif after.status is not before.status and after.status in _SUBSCRIPTION_NEWS:
        kind = _SUBSCRIPTION_NEWS[after.status]
        key = f"{chain}:{after.period_end.isoformat()}"
    else:
        return None
    return Event(user_id=after.user_id, kind=kind, key=f"{kind.value}:{key}", data=data)


#: training progress is told at these percentages only (not every poll's figure)
TRAINING_MILESTONES = (25, 50, 75)


def training_progress(job: Job, before: int) -> Event | None:
    """The highest milestone the training ``job``'s progress (percent) passed that
    ``before`` had not: one notification per milestone, keyed by it (a provider
    reporting the same figure again, or a retried attempt, tells nothing twice)."""
    if job.kind is not ModelKind.TRAINING:
        return None
    passed = [m for m in TRAINING_MILESTONES if before < m <= job.progress]
    if not passed:
        return None
    milestone = passed[-1]
    return Event(
        user_id=job.user_id,
        kind=EventKind.TRAINING_PROGRESS,
        key=f"training_progress:{job.id}:{milestone}",
        data={"jobId": str(job.id), "jobKind": job.kind.value, "progress": milestone},
    )
