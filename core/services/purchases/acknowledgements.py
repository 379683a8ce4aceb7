"""Acknowledging purchases to the store within its deadline."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from genstudio.core.model.errors import StoreUnavailable
from genstudio.core.model.purchases.entitlements import (
    StoreTransaction,
)
from genstudio.core.model.purchases.products import Store
from genstudio.ports.unit_of_work import UnitOfWorkFactory

log = logging.getLogger("genstudio.purchases")

#: Google refunds a purchase nobody acknowledged within three days
ACKNOWLEDGE_WITHIN = timedelta(days=3)


async def unacknowledged(
    uow_factory: UnitOfWorkFactory, *, store: Store, now: datetime, limit: int = 200
) -> list[StoreTransaction]:
    """Purchases the store still waits to hear we delivered (within its deadline)."""
    async with uow_factory() as uow:
        return await uow.purchases.unacknowledged(store, now - ACKNOWLEDGE_WITHIN, limit=limit)


async def mark_acknowledged(
    uow_factory: UnitOfWorkFactory, *, store: Store, transaction_id: str
) -> None:
    async with uow_factory() as uow:
        await uow.purchases.lock(store, transaction_id)
        tx = await uow.purchases.get_transaction(store, transaction_id)
        if tx is not None and not tx.acknowledged:
            await uow.purchases.update_transaction(msgspec.structs.replace(tx, acknowledged=True))
            await uow.commit()


class Acknowledger(Protocol):
    async def acknowledge(self, transaction: StoreTransaction) -> None:
        """Tell the store the purchase was delivered. Raises StoreUnavailable."""
        ...


async def _acknowledge(
    uow_factory: UnitOfWorkFactory, client: Acknowledger, tx: StoreTransaction
) -> bool:
    try:
        await client.acknowledge(tx)
    except StoreUnavailable as exc:
        log.warning(
            "acknowledgement deferred",
            extra={
                "store": tx.store.value,
                "transaction_id": tx.transaction_id,
                "error": exc.message,
            },
        )
        return False  # acknowledge_pending's next run tries again
    await mark_acknowledged(uow_factory, store=tx.store, transaction_id=tx.transaction_id)
    return True


async def acknowledge_delivered(
    uow_factory: UnitOfWorkFactory, client: Acknowledger, *, store: Store, transaction_id: str
) -> bool:
    """Right after the purchase's commit: tell the store, unless it already heard.
    A store that does not answer is left to ``acknowledge_pending``."""
    async with uow_factory() as uow:
        tx = await uow.purchases.get_transaction(store, transaction_id)
    if tx is None or tx.acknowledged:
        return False
    return await _acknowledge(uow_factory, client, tx)


async def acknowledge_pending(
    uow_factory: UnitOfWorkFactory, client: Acknowledger, *, store: Store, now: datetime
) -> int:
    """Tell the store about every delivered purchase it has not heard of yet (Google:
    within its three days). Safe to repeat; returns how many were acknowledged."""
    done = 0
    for tx in await unacknowledged(uow_factory, store=store, now=now):
        done += await _acknowledge(uow_factory, client, tx)
    return done
