"""The analytics opt-out (issue #20) over every unit-of-work adapter (memory,
Postgres): ``SocialProfile.analytics`` is stored and read back, and
``analytics_opt_outs`` names, in one read, the users who turned it off or whose
account was erased."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import msgspec

from genstudio.core.model.social import SocialProfile
from genstudio.ports.unit_of_work import UnitOfWorkFactory

T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


async def _user(factory: UnitOfWorkFactory) -> uuid.UUID:
    user_id = uuid.uuid4()
    async with factory() as uow:
        await uow.profiles.ensure(user_id, None)
        await uow.commit()
    return user_id


async def _analytics(factory: UnitOfWorkFactory, user_id: uuid.UUID, on: bool) -> None:
    async with factory() as uow:
        profile = await uow.social.get_profile(user_id) or SocialProfile(user_id=user_id)
        await uow.social.save_profile(msgspec.structs.replace(profile, analytics=on))
        await uow.commit()


async def test_analytics_is_on_until_turned_off_and_read_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = await _user(uow_factory)
    async with uow_factory() as uow:
        profile = await uow.social.get_profile(user)
    assert profile is not None and profile.analytics is True
    await _analytics(uow_factory, user, False)
    async with uow_factory() as uow:
        profile = await uow.social.get_profile(user)
    assert profile is not None and profile.analytics is False


async def test_opt_outs_name_only_those_who_turned_analytics_off(
    uow_factory: UnitOfWorkFactory,
) -> None:
    on, off, again = [await _user(uow_factory) for _ in range(3)]
    never_signed_in = uuid.uuid4()
    await _analytics(uow_factory, off, False)
    await _analytics(uow_factory, again, False)
    await _analytics(uow_factory, again, True)
    async with uow_factory() as uow:
        assert await uow.social.analytics_opt_outs({on, off, again, never_signed_in}) == {off}
        assert await uow.social.analytics_opt_outs(set()) == set()


async def test_an_erased_account_counts_as_opted_out(uow_factory: UnitOfWorkFactory) -> None:
    user, other = await _user(uow_factory), await _user(uow_factory)
    async with uow_factory() as uow:
        await uow.safety.erase_account(user, T0)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.social.analytics_opt_outs([user, other]) == {user}
