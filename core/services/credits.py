"""Use cases that move credits. Each runs inside a unit of work the caller owns,
after the caller has locked the account with ``uow.ledger.lock_account``."""

from __future__ import annotations

import uuid
import weakref
from datetime import datetime

import msgspec

from genstudio.core.model.credits import (
    EntryKind,
    Hold,
    HoldStatus,
    LedgerEntry,
    Lot,
    allocate,
    check_balance_bound,
    validate_grant,
)
from genstudio.core.model.errors import ConcurrencyConflict, NotFound
from genstudio.core.model.ids import new_id, uuid7
from genstudio.core.model.profiles import Profile
from genstudio.ports.realtime import RealtimePublisher
from genstudio.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

#: the balance each account was left at by the entries a unit of work appended, read by
#: the ``credits.changed`` announcement after its commit (core/services/realtime.py):
#: known from the entries themselves, so announcing costs no read
_moved: weakref.WeakKeyDictionary[UnitOfWork, dict[uuid.UUID, int]] = weakref.WeakKeyDictionary()


def moved_balances(uow: UnitOfWork) -> dict[uuid.UUID, int]:
    """The accounts whose balance ``uow``'s entries moved, with the balance each was
    left at (empty when none moved)."""
    return dict(_moved.get(uow, {}))


async def _append(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    kind: EntryKind,
    amount: int,
    reference: str,
    key: str,
    now: datetime,
    lot_id: uuid.UUID | None = None,
    hold_id: uuid.UUID | None = None,
    balance: int | None = None,
    deferred: bool = False,
) -> LedgerEntry:
    """Append one entry; ``balance`` is the account's balance now, when the caller
    knows it under the account's lock (else it is read). ``deferred``: the caller's
    unit of work does not go on after a refusal (``LedgerRepository.append_deferred``)."""
    if balance is None:
        balance = await uow.ledger.balance(user_id)
    check_balance_bound(balance, amount)
    entry = LedgerEntry(
        id=uuid7(),  # time-ordered: entries of one instant read back in writing order
        user_id=user_id,
        kind=kind,
        amount=amount,
        balance_after=balance + amount,
        reference=reference,
        idempotency_key=key,
        created_at=now,
        lot_id=lot_id,
        hold_id=hold_id,
    )
    if deferred:
        await uow.ledger.append_deferred(entry)
    else:
        await uow.ledger.append(entry)
    if amount:
        _moved.setdefault(uow, {})[user_id] = entry.balance_after
    return entry


async def expire_due_lots(uow: UnitOfWork, user_id: uuid.UUID, now: datetime) -> int:
    """Write an expiry entry for every lot past its expiry with credits left.

    Returns the credits expired. The account must be locked.
    """
    expired = 0
    for lot in await uow.ledger.lots(user_id):
        if lot.remaining > 0 and lot.is_expired(now):
            await uow.ledger.set_lot_remaining(lot.id, 0)
            await _append(
                uow,
                user_id=user_id,
                kind=EntryKind.EXPIRY,
                amount=-lot.remaining,
                reference=f"lot:{lot.id}",
                key=f"expiry:{lot.id}:{new_id()}",
                now=now,
                lot_id=lot.id,
            )
            expired += lot.remaining
    return expired


async def add_credits(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    amount: int,
    kind: EntryKind,
    reference: str,
    idempotency_key: str,
    now: datetime,
    expires_at: datetime | None = None,
) -> LedgerEntry:
    """Credit a new lot. Replaying the same idempotency key returns the first entry."""
    validate_grant(amount, kind)
    await uow.ledger.lock_account(user_id)
    existing = await uow.ledger.find(user_id, idempotency_key)
    if existing is not None:
        return existing
    lot = Lot(
        id=new_id(),
        user_id=user_id,
        source=kind,
        amount=amount,
        remaining=amount,
        created_at=now,
        expires_at=expires_at,
        reference=reference,
    )
    await uow.ledger.add_lot(lot)
    return await _append(
        uow,
        user_id=user_id,
        kind=kind,
        amount=amount,
        reference=reference,
        key=idempotency_key,
        now=now,
        lot_id=lot.id,
    )


async def grant_credits(
    uow_factory: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    amount: int,
    reference: str,
    idempotency_key: str,
    now: datetime,
    email: str | None = None,
    expires_at: datetime | None = None,
    realtime: RealtimePublisher | None = None,
) -> LedgerEntry:
    """An operator's grant (the CLI's ``credits grant``): one committed lot.
    ``realtime``: the new balance is announced after the commit (``credits.changed``;
    a replayed key moves nothing and announces nothing)."""
    # here, not at the top: core/services/realtime reads this module's moved_balances
    from genstudio.core.services.realtime import credits_changed

    async with uow_factory() as uow:
        await uow.profiles.ensure(user_id, email)
        entry = await add_credits(
            uow,
            user_id=user_id,
            amount=amount,
            kind=EntryKind.GRANT,
            reference=reference,
            idempotency_key=idempotency_key,
            now=now,
            expires_at=expires_at,
        )
        credits_changed(uow, realtime)
        await uow.commit()
        return entry


async def lock_account(
    uow: UnitOfWork, user_id: uuid.UUID, email: str | None = None
) -> tuple[Profile, list[Lot]]:
    """Lock the user's account with its lots, creating the profile on first sight."""
    try:
        return await uow.ledger.lock_account_with_lots(user_id)
    except NotFound:
        await uow.profiles.ensure(user_id, email)
        return await uow.ledger.lock_account_with_lots(user_id)


async def place_hold(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    amount: int,
    reference: str,
    now: datetime,
    locked: tuple[Profile, list[Lot]] | None = None,
) -> Hold:
    """Reserve ``amount`` from the soonest-expiring lots. Raises InsufficientCredits.

    ``locked``: what ``lock_account`` answered in this unit of work, if the caller
    already locked the account (else it is locked here)."""
    profile, lots = locked or await uow.ledger.lock_account_with_lots(user_id)
    balance = profile.credits
    if any(lot.is_expired(now) for lot in lots):
        balance -= await expire_due_lots(uow, user_id, now)
        lots = await uow.ledger.lots(user_id)
    allocations = allocate(lots, amount, now)
    by_id = {lot.id: lot for lot in lots}
    for part in allocations:
        await uow.ledger.set_lot_remaining(part.lot_id, by_id[part.lot_id].remaining - part.amount)
    hold = Hold(
        id=new_id(),
        user_id=user_id,
        amount=amount,
        allocations=allocations,
        status=HoldStatus.OPEN,
        reference=reference,
        created_at=now,
    )
    await uow.ledger.add_hold(hold)
    await _append(
        uow,
        user_id=user_id,
        kind=EntryKind.HOLD,
        amount=-amount,
        reference=reference,
        key=f"hold:{hold.id}",
        now=now,
        hold_id=hold.id,
        balance=balance,  # known under the lock: one read fewer on the submission path
        deferred=True,  # a refused hold fails the caller's unit: nothing reads it back
    )
    return hold


async def _close_hold(
    uow: UnitOfWork, hold_id: uuid.UUID, status: HoldStatus, now: datetime
) -> Hold | None:
    hold = await uow.ledger.get_hold(hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}")
    await uow.ledger.lock_account(hold.user_id)
    hold = await uow.ledger.get_hold(hold_id)  # re-read under the lock
    assert hold is not None
    if hold.status is not HoldStatus.OPEN:
        return None  # already ended: ending it again must change nothing
    closed = hold.close(status, now)
    try:
        await uow.ledger.close_hold(closed)
    except ConcurrencyConflict:
        return None
    return closed


async def settle_hold(uow: UnitOfWork, hold_id: uuid.UUID, now: datetime) -> bool:
    """Turn a hold into a spend. Returns False if it had already ended.

    What a partial refund claimed of the hold's lots while it was open (``Lot.owed``)
    is not taken from the spend: the credits went to a job before the refund could
    take them, and a refund never takes spent credits (a full one neither:
    ``claw_back_lot``). The lot goes on owing it, to be paid by another of its holds
    that is released; with none left, it is never paid."""
    closed = await _close_hold(uow, hold_id, HoldStatus.SETTLED, now)
    if closed is None:
        return False
    await _append(
        uow,
        user_id=closed.user_id,
        kind=EntryKind.SETTLE,
        amount=0,
        reference=closed.reference,
        key=f"settle:{closed.id}",
        now=now,
        hold_id=closed.id,
    )
    return True


async def release_hold(uow: UnitOfWork, hold_id: uuid.UUID, now: datetime) -> bool:
    """Give a hold's credits back to the lots they came from. False if already ended.

    A lot that owes credits (a partial refund claimed them while they were held:
    ``Lot.owed``) takes them back from what returns to it, at once, in this unit of
    work: once, since a hold is released once, under the account's lock."""
    closed = await _close_hold(uow, hold_id, HoldStatus.RELEASED, now)
    if closed is None:
        return False
    lots = {
        lot.id: lot
        for lot in await uow.ledger.lots_by_id({part.lot_id for part in closed.allocations})
    }
    for part in closed.allocations:
        lot = lots.get(part.lot_id)
        remaining = (lot.remaining if lot is not None else 0) + part.amount
        await uow.ledger.set_lot_remaining(part.lot_id, remaining)
        if lot is not None:
            lots[lot.id] = msgspec.structs.replace(lot, remaining=remaining)
    await _append(
        uow,
        user_id=closed.user_id,
        kind=EntryKind.RELEASE,
        amount=closed.amount,
        reference=closed.reference,
        key=f"release:{closed.id}",
        now=now,
        hold_id=closed.id,
    )
    for lot in lots.values():
        # an ended lot owes nothing: all that comes back to it expires just below
        if lot.owed > 0 and not lot.is_expired(now):
            paid = min(lot.owed, lot.remaining)
            await uow.ledger.set_lot_owed(lot.id, lot.owed - paid)
            await _take(
                uow,
                lot,
                paid,
                f"{lot.reference}: refunded while held by {closed.reference}",
                now,
                key=f"clawback:{lot.id}:{closed.id}",  # one hold pays a lot once
            )
    # a lot that expired while its credits were held expires now, not never
    await expire_due_lots(uow, closed.user_id, now)
    return True


async def claw_back_lot(
    uow: UnitOfWork, *, user_id: uuid.UUID, lot_id: uuid.UUID, reference: str, now: datetime
) -> int:
    """Take back what is still unspent of one lot (a refunded or revoked purchase).

    Never more than the lot holds, so never below zero: credits already spent or held
    by a job stay spent. Returns the credits taken. The account must be locked.
    """
    await expire_due_lots(uow, user_id, now)
    lot = await _lot(uow, user_id, lot_id)
    # credits of this lot a job still holds would flow back into it when the hold is
    # released: ending the lot now makes them expire then, instead of reviving it
    await uow.ledger.end_lot(lot_id, now)
    if lot is None:
        return 0
    return await _take(uow, lot, lot.remaining, reference, now)


async def claw_back_part(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    lot_id: uuid.UUID,
    amount: int,
    reference: str,
    now: datetime,
) -> int:
    """Claim ``amount`` more of one lot (part of a purchase was refunded); the lot
    lives on with the rest.

    Takes what the lot has left, up to ``amount``; the lot owes the rest
    (``Lot.owed``), taken from the credits that come back to it when the jobs holding
    them fail or are cancelled (``release_hold``), never from credits spent: like
    ``claw_back_lot``, a refund leaves spent credits spent (``settle_hold``). Returns
    the credits taken now. The account must be locked.
    """
    await expire_due_lots(uow, user_id, now)
    lot = await _lot(uow, user_id, lot_id)
    if lot is None or amount <= 0:
        return 0
    taken = await _take(uow, lot, min(amount, lot.remaining), reference, now)
    if taken < amount and not lot.is_expired(now):
        await uow.ledger.set_lot_owed(lot.id, lot.owed + amount - taken)
    return taken


async def forgive_owed(uow: UnitOfWork, *, user_id: uuid.UUID, lot_id: uuid.UUID) -> int:
    """Cancel what one lot still owes (``Lot.owed``): the store undid the partial
    refund that claimed it, or refunded the whole purchase (the lot ends, and what
    jobs hold expires when it comes back). Returns the credits forgiven. The account
    must be locked."""
    lot = await _lot(uow, user_id, lot_id)
    if lot is None or lot.owed == 0:
        return 0
    await uow.ledger.set_lot_owed(lot.id, 0)
    return lot.owed


async def return_to_lot(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    lot_id: uuid.UUID,
    amount: int,
    reference: str,
    now: datetime,
) -> int:
    """Give back to a live lot what ``claw_back_part`` took from it (the store undid
    a partial refund; what the lot still owes is the caller's to ``forgive_owed``).
    Returns the credits returned: none to a lot that is gone or has ended, nor beyond
    what the lot was granted. The account must be locked."""
    await expire_due_lots(uow, user_id, now)
    lot = await _lot(uow, user_id, lot_id)
    if lot is None or lot.is_expired(now) or amount <= 0:
        return 0
    amount = min(amount, lot.amount - lot.remaining)
    if amount == 0:
        return 0
    await uow.ledger.set_lot_remaining(lot.id, lot.remaining + amount)
    await _append(
        uow,
        user_id=user_id,
        kind=lot.source,
        amount=amount,
        reference=reference,
        key=f"reinstate:{lot.id}:{new_id()}",
        now=now,
        lot_id=lot.id,
    )
    return amount


async def reopen_lot(
    uow: UnitOfWork,
    *,
    user_id: uuid.UUID,
    lot_id: uuid.UUID,
    taken: int,
    reference: str,
    now: datetime,
) -> int | None:
    """Undo a refund that ended a purchase's lot (``claw_back_lot``): the lot lives
    again, with what the refund took (``taken``) and what expired from it since (credits
    jobs held then, released after) given back; credits jobs still hold return to it
    when released. Returns the credits given back, or None when the lot is gone (the
    caller grants them anew). The account must be locked."""
    lot = await _lot(uow, user_id, lot_id)
    if lot is None:
        return None
    expired, ended_at = 0, lot.expires_at
    if ended_at is not None:
        # what came back to the ended lot and expired at once: newest first, back to
        # when the refund ended it
        before: tuple[datetime, uuid.UUID] | None = None
        while True:
            page = await uow.ledger.entries(user_id, limit=500, before=before)
            since = [e for e in page if e.created_at >= ended_at]
            expired -= sum(
                e.amount for e in since if e.kind is EntryKind.EXPIRY and e.lot_id == lot.id
            )
            if len(since) < len(page) or len(page) < 500:
                break
            before = (page[-1].created_at, page[-1].id)
        await uow.ledger.reopen_lot(lot.id)
    return await return_to_lot(
        uow, user_id=user_id, lot_id=lot.id, amount=taken + expired, reference=reference, now=now
    )


async def _lot(uow: UnitOfWork, user_id: uuid.UUID, lot_id: uuid.UUID) -> Lot | None:
    """The user's lot, whatever it has left (none: not among ``lots``)."""
    found = await uow.ledger.lots_by_id([lot_id])
    return next((lot for lot in found if lot.user_id == user_id), None)


async def _take(
    uow: UnitOfWork,
    lot: Lot,
    amount: int,
    reference: str,
    now: datetime,
    *,
    key: str | None = None,
) -> int:
    if amount <= 0:
        return 0
    await uow.ledger.set_lot_remaining(lot.id, lot.remaining - amount)
    await _append(
        uow,
        user_id=lot.user_id,
        kind=EntryKind.CLAWBACK,
        amount=-amount,
        reference=reference,
        key=key or f"clawback:{lot.id}:{new_id()}",
        now=now,
        lot_id=lot.id,
    )
    return amount


async def refund_settled(
    uow: UnitOfWork, *, hold_id: uuid.UUID, reason: str, now: datetime
) -> LedgerEntry:
    """Give back the credits of a settled hold as a new, non-expiring lot (once)."""
    hold = await uow.ledger.get_hold(hold_id)
    if hold is None or hold.status is not HoldStatus.SETTLED:
        raise NotFound(f"no settled hold {hold_id}", field="hold_id")
    return await add_credits(
        uow,
        user_id=hold.user_id,
        amount=hold.amount,
        kind=EntryKind.REFUND,
        reference=f"{hold.reference}; {reason}",
        idempotency_key=f"refund:{hold.id}",
        now=now,
    )


async def open_account(
    uow_factory: UnitOfWorkFactory,
    *,
    user_id: uuid.UUID,
    email: str | None,
    now: datetime,
    realtime: RealtimePublisher | None = None,
) -> Profile:
    """The user's profile (created on first sight), with expired lots swept first.
    ``realtime``: a sweep that moved the balance is announced after the commit
    (``credits.changed``), to the user's other open apps too."""
    from genstudio.core.services.realtime import credits_changed  # see grant_credits

    async with uow_factory() as uow:
        profile = await uow.profiles.ensure(user_id, email)
        if any(lot.is_expired(now) for lot in await uow.ledger.lots(user_id)):
            await uow.ledger.lock_account(user_id)
            await expire_due_lots(uow, user_id, now)
            profile = await uow.profiles.get(user_id) or profile
            credits_changed(uow, realtime)
        await uow.commit()
    return profile
