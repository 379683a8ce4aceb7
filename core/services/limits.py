"""Spending a request's rate budgets, and the tier that sizes a user's."""

from __future__ import annotations

import uuid

from genstudio.core.model.limits import Limit, Operation, RateLimited, RatePolicy, Scope, Usage
from genstudio.core.model.profiles import SubscriptionTier
from genstudio.ports.limits import RateCounter
from genstudio.ports.unit_of_work import UnitOfWorkFactory


async def spend(
    counter: RateCounter,
    policy: RatePolicy,
    operation: Operation,
    *,
    ip: str,
    user_id: uuid.UUID | None = None,
    tier: SubscriptionTier | None = None,
) -> list[tuple[Limit, Usage]]:
    """Count one request of ``operation`` against each of its budgets (the user's,
    then the IP's) and return what is left of each. Raises RateLimited for the first
    budget that is spent (the budgets after it are not counted)."""
    spent: list[tuple[Limit, Usage]] = []
    for limit in policy.limits_for(operation, tier if user_id is not None else None):
        subject = str(user_id) if limit.scope is Scope.USER else ip
        usage = await counter.hit(limit.key(subject), limit.budget)
        if not usage.allowed:
            raise RateLimited(limit, usage)
        spent.append((limit, usage))
    return spent


async def refuse_if_spent(
    counter: RateCounter, policy: RatePolicy, operation: Operation, *, ip: str
) -> None:
    """Raise RateLimited when the IP's budget of ``operation`` is spent, counting
    nothing: failed authentications are checked before a token is verified and
    counted only once it is refused."""
    for limit in policy.limits_for(operation, None):
        usage = await counter.peek(limit.key(ip), limit.budget)
        if not usage.allowed:
            raise RateLimited(limit, usage)


async def tier_of(uow_factory: UnitOfWorkFactory, user_id: uuid.UUID) -> SubscriptionTier:
    """The user's tier as their profile says (free for a user without one yet)."""
    async with uow_factory() as uow:
        profile = await uow.profiles.get(user_id)
    return profile.subscription_tier if profile is not None else SubscriptionTier.FREE
