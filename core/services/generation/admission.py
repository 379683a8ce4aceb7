"""Whether a submission with uploads is worth reading (issue #19): the free checks that
need nothing of its body, made before the edge reads it.

An edit or a video carries megabytes of pictures. Before any of it is read: a user
whose generation is suspended is refused (403), and so is one whose balance is short
of the cheapest submission of the kind (402: whatever the body says, it could not be
paid for). A request whose Idempotency-Key has an answer stored is let through: its
body decides between a replay and a mismatch. Nothing is locked or held; the
submission's own transaction decides again.
"""

from __future__ import annotations

import uuid

from genstudio.core.model.errors import InsufficientCredits
from genstudio.core.model.job_params import MIN_SECONDS
from genstudio.core.model.pricing import (
    Catalog,
    ModelKind,
    PerImagePrice,
    PerSecondPrice,
    PerStepPrice,
)
from genstudio.core.services.moderation.service import Moderation
from genstudio.ports.unit_of_work import UnitOfWorkFactory


def cheapest(catalog: Catalog, kind: ModelKind) -> int:
    """The least any submission of ``kind`` costs (0 when nothing of the kind is
    offered: the submission refuses it anyway)."""
    prices: list[int] = []
    for spec in catalog.all():
        if spec.kind is not kind:
            continue
        rule = spec.price
        if isinstance(rule, PerImagePrice) and rule.tiers:
            prices.append(min(t.credits for t in rule.tiers))
        elif isinstance(rule, PerSecondPrice) and rule.per_second:
            prices.append(min(rule.for_video(MIN_SECONDS, r) for r in rule.per_second))
        elif isinstance(rule, PerStepPrice) and rule.steps:
            prices.append(rule.for_steps(min(rule.steps)))
    return min(prices, default=0)


async def admit_upload(
    uow_factory: UnitOfWorkFactory,
    catalog: Catalog,
    moderation: Moderation | None,
    *,
    user_id: uuid.UUID,
    kind: ModelKind,
    idempotency_key: str | None,
) -> None:
    """Raises GenerationSuspended (403) or InsufficientCredits (402, ``required``: the
    cheapest submission of ``kind``); returns when the body is worth reading."""
    if moderation is not None:
        await moderation.require_standing(user_id)
    async with uow_factory() as uow:
        if idempotency_key is not None and await uow.idempotency.get(user_id, idempotency_key):
            return  # a retry of an answered request: its body decides
        balance = await uow.ledger.balance(user_id)
    least = cheapest(catalog, kind)
    if balance < least:
        raise InsufficientCredits(required=least, available=balance)
