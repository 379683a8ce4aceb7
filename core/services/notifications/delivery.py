"""Delivering the push outbox, at least once, and reading Expo's receipts.

``deliver_due`` claims due deliveries (a lease, committed), renders each in its
user's language, sends them in one go (the sender batches), then records what became
of each in one unit of work. A process that dies after claiming leaves the lease to
run out and the next pass (a kick, or the reconciler's) takes the delivery again; one
that dies between Expo's answer and that record can send a push twice (Expo has no
idempotency key), so the app also drops a push whose ``notificationId`` it has shown.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

import msgspec

from genstudio.core.model.notifications import (
    Channel,
    Delivery,
    DeliveryStatus,
    NotificationPolicy,
    PushTicket,
    default_preferences,
)
from genstudio.ports.clock import Clock
from genstudio.ports.notification_texts import NotificationTexts
from genstudio.ports.push import (
    DEVICE_NOT_REGISTERED,
    INVALID_CREDENTIALS,
    MESSAGE_RATE_EXCEEDED,
    MESSAGE_TOO_BIG,
    PushMessage,
    PushResult,
    PushSender,
    PushUnavailable,
)
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.notifications")

#: Expo keeps receipts for about a day: a ticket older than this gets no answer any more
RECEIPTS_KEPT = timedelta(hours=24)


class DeliveryReport(msgspec.Struct, frozen=True, kw_only=True):
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    retrying: int = 0
    held: int = 0  # quiet hours began meanwhile

    @property
    def handled(self) -> int:
        return self.sent + self.skipped + self.failed + self.retrying + self.held


class _Planned(msgspec.Struct, kw_only=True):
    delivery: Delivery
    messages: list[PushMessage]
    outcome: Delivery | None = None  # decided without sending (skipped, held)


class PushDelivery:
    """``sender`` None: push is not configured (the embedded default): deliveries are
    skipped, the inbox is the only channel."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        sender: PushSender | None,
        texts: NotificationTexts,
        clock: Clock,
        policy: NotificationPolicy | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.sender = sender
        self.texts = texts
        self.clock = clock
        self.policy = policy or NotificationPolicy()

    async def deliver_due(self, limit: int = 500) -> DeliveryReport:
        """One pass over what is due (at most ``limit``). Safe to run concurrently
        and any number of times."""
        now = self.clock.now()
        async with self.uow_factory() as uow:
            claimed = await uow.notifications.claim_due(now, now + self.policy.claim_for, limit)
            await uow.commit()
        if not claimed:
            return DeliveryReport()
        plans = await self._plan(claimed)
        to_send = [m for p in plans if p.outcome is None for m in p.messages]
        results: list[PushResult] = []
        unavailable: str | None = None
        if to_send and self.sender is not None:
            try:
                results = await self.sender.send(to_send)
            except PushUnavailable as exc:
                unavailable = str(exc) or "push service unavailable"
        return await self._record(plans, results, unavailable)

    async def _plan(self, claimed: list[Delivery]) -> list[_Planned]:
        """Read what the deliveries need (one unit of work, three reads for the whole
        pass: a pass is hundreds of pushes) and decide which to send."""
        now = self.clock.now()
        plans: list[_Planned] = []
        users = [d.user_id for d in claimed]
        async with self.uow_factory() as uow:
            notifications = await uow.notifications.get_many([d.notification_id for d in claimed])
            saved = await uow.notifications.preferences_of(users)
            devices = await uow.push_tokens.active_of_users(users)
        for delivery in claimed:
            notification = notifications.get(delivery.notification_id)
            prefs = saved.get(delivery.user_id) or default_preferences(delivery.user_id)
            tokens = devices.get(delivery.user_id, [])
            plan = _Planned(delivery=delivery, messages=[])
            plans.append(plan)
            if notification is None or not prefs.allows(notification.category, Channel.PUSH):
                plan.outcome = _finish(delivery, DeliveryStatus.SKIPPED, now, "push off")
            elif self.sender is None:
                plan.outcome = _finish(delivery, DeliveryStatus.SKIPPED, now, "push not configured")
            elif not tokens:
                plan.outcome = _finish(delivery, DeliveryStatus.SKIPPED, now, "no device")
            elif (until := prefs.quiet_until(now)) is not None:
                plan.outcome = msgspec.structs.replace(delivery, due_at=until, claimed_until=None)
            else:
                text = self.texts.render(notification, prefs.language)
                data = {
                    **notification.data,
                    "notificationId": str(notification.id),
                    "kind": notification.kind.value,
                    "count": notification.count,
                }
                plan.messages = [
                    PushMessage(
                        to=t.token,
                        title=text.title,
                        body=text.body,
                        data=data,
                        channel_id=notification.category.value,
                    )
                    for t in tokens
                ]
        return plans

    async def _record(
        self, plans: list[_Planned], results: list[PushResult], unavailable: str | None
    ) -> DeliveryReport:
        """What became of each delivery, in one unit of work."""
        now = self.clock.now()
        by_token = iter(results)
        counts: dict[str, int] = defaultdict(int)
        gone: list[str] = []
        tickets: list[PushTicket] = []
        outcomes: list[Delivery] = []
        async with self.uow_factory() as uow:
            locked = await uow.notifications.get_deliveries(
                [p.delivery.id for p in plans], lock=True
            )
            for plan in plans:
                current = locked.get(plan.delivery.id)
                if current is None or current.claimed_until != plan.delivery.claimed_until:
                    continue  # our lease ran out and another sender took it over
                if plan.outcome is not None:
                    outcome = plan.outcome
                elif unavailable is not None:
                    outcome = self._retry(plan.delivery, now, unavailable)
                else:
                    mine = [next(by_token) for _ in plan.messages]
                    outcome = self._outcome(plan.delivery, mine, now, tickets, gone)
                outcomes.append(outcome)
                counts[_bucket(plan.delivery, outcome)] += 1
            await uow.notifications.save_deliveries(outcomes)
            if tickets:
                await uow.notifications.add_tickets(tickets)
            if gone:
                await uow.push_tokens.deactivate(gone, now)
            await uow.commit()
        report = DeliveryReport(**counts)
        if report.sent or report.failed or report.retrying:
            log.info("push deliveries", extra=msgspec.structs.asdict(report))
        return report

    def _outcome(
        self,
        delivery: Delivery,
        results: list[PushResult],
        now: datetime,
        tickets: list[PushTicket],
        gone: list[str],
    ) -> Delivery:
        for r in results:
            if r.ticket_id is not None:
                tickets.append(
                    PushTicket(
                        id=r.ticket_id, token=r.token, delivery_id=delivery.id, created_at=now
                    )
                )
            elif r.error == DEVICE_NOT_REGISTERED:
                gone.append(r.token)
            elif r.error == MESSAGE_TOO_BIG:
                log.error(
                    "push refused as too big; not retried",
                    extra={"delivery_id": str(delivery.id), "detail": r.message},
                )
            elif r.error == INVALID_CREDENTIALS:
                # an operator's to fix (EXPO_ACCESS_TOKEN, FCM/APNs keys): say so loudly
                log.error(
                    "operator alert: Expo InvalidCredentials; pushes wait for a fix",
                    extra={"alert": INVALID_CREDENTIALS, "detail": r.message},
                )
        if any(r.ok for r in results):
            return _finish(delivery, DeliveryStatus.SENT, now, None)
        errors = {r.error for r in results}
        if errors & {MESSAGE_RATE_EXCEEDED, INVALID_CREDENTIALS}:
            return self._retry(delivery, now, ", ".join(sorted(e or "" for e in errors)))
        if errors <= {DEVICE_NOT_REGISTERED}:
            return _finish(delivery, DeliveryStatus.SKIPPED, now, "no registered device")
        detail = "; ".join(f"{r.error}: {r.message}" for r in results)[:500]
        return _finish(delivery, DeliveryStatus.FAILED, now, detail)

    def _retry(self, delivery: Delivery, now: datetime, why: str) -> Delivery:
        attempts = delivery.attempts + 1
        if attempts >= self.policy.max_attempts:
            return _finish(delivery, DeliveryStatus.FAILED, now, f"gave up: {why}"[:500])
        return msgspec.structs.replace(
            delivery,
            attempts=attempts,
            due_at=self.policy.retry_at(attempts, now),
            claimed_until=None,
            detail=why[:500],
        )

    async def check_receipts(self, limit: int = 1000) -> int:
        """Ask Expo for the receipts of tickets old enough to have one; a
        ``DeviceNotRegistered`` receipt deactivates the token. Tickets answered, or
        too old to be, are forgotten. Returns how many receipts were read."""
        if self.sender is None:
            return 0
        now = self.clock.now()
        async with self.uow_factory() as uow:
            tickets = await uow.notifications.tickets_before(
                now - self.policy.receipts_after, limit
            )
        if not tickets:
            return 0
        receipts = await self.sender.receipts([t.id for t in tickets])
        answered = {r.ticket_id: r for r in receipts}
        token_of = {t.id: t.token for t in tickets}
        gone = [token_of[r.ticket_id] for r in receipts if r.error == DEVICE_NOT_REGISTERED]
        for r in receipts:
            if not r.ok and r.error != DEVICE_NOT_REGISTERED:
                level = logging.ERROR if r.error == INVALID_CREDENTIALS else logging.WARNING
                log.log(
                    level,
                    "push receipt error"
                    + ("; operator alert" if r.error == INVALID_CREDENTIALS else ""),
                    extra={"ticket": r.ticket_id, "error": r.error, "detail": r.message},
                )
        done = [t.id for t in tickets if t.id in answered or t.created_at < now - RECEIPTS_KEPT]
        async with self.uow_factory() as uow:
            if gone:
                await uow.push_tokens.deactivate(gone, now)
            await uow.notifications.delete_tickets(done)
            await uow.commit()
        return len(receipts)


def _finish(
    delivery: Delivery, status: DeliveryStatus, now: datetime, detail: str | None
) -> Delivery:
    return msgspec.structs.replace(
        delivery, status=status, finished_at=now, claimed_until=None, detail=detail
    )


def _bucket(before: Delivery, after: Delivery) -> str:
    if after.status is DeliveryStatus.PENDING:
        return "retrying" if after.attempts > before.attempts else "held"
    return after.status.value
