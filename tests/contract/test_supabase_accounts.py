"""SupabaseAccountDirectory against the Supabase Auth stand-in: the admin API's soft
delete ends every session, a second deletion answers the same, and every failure is
AuthUnavailable (the caller's request may be retried)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from genstudio.adapters.supabase.admin import SupabaseAccountDirectory
from genstudio.core.model.safety import AuthUnavailable
from tests.standins.loopback import Fail, RateLimit, Stall
from tests.standins.supabase_auth import SupabaseAuthStandIn


@pytest.fixture
def auth() -> Iterator[SupabaseAuthStandIn]:
    with SupabaseAuthStandIn(service_key="svc") as standin:
        yield standin


def directory(auth: SupabaseAuthStandIn, key: str = "svc") -> SupabaseAccountDirectory:
    return SupabaseAccountDirectory(auth.url, key, timeout=0.5)


async def test_revoking_soft_deletes_the_user_and_ends_every_session(
    auth: SupabaseAuthStandIn,
) -> None:
    user = uuid.uuid4()
    auth.add_user(user, sessions=3)
    await directory(auth).revoke(user, "their-token")
    assert auth.users[user] == {"deleted": True} and auth.sessions[user] == 0
    [request] = auth.requests
    assert request.method == "DELETE" and request.path == f"/auth/v1/admin/users/{user}"
    assert request.json() == {"should_soft_delete": True}
    assert request.headers["apikey"] == "svc"
    assert request.headers["authorization"] == "Bearer svc"


async def test_revoking_twice_or_an_unknown_user_is_not_an_error(
    auth: SupabaseAuthStandIn,
) -> None:
    user = uuid.uuid4()
    auth.add_user(user)
    await directory(auth).revoke(user, None)
    await directory(auth).revoke(user, None)
    await directory(auth).revoke(uuid.uuid4(), None)  # 404: gone is gone
    assert auth.users[user] == {"deleted": True}


@pytest.mark.parametrize("fault", [Fail(500), Fail(502), RateLimit(retry_after=1), Stall(2)])
async def test_a_failing_auth_service_is_auth_unavailable(
    auth: SupabaseAuthStandIn, fault: Fail | RateLimit | Stall
) -> None:
    user = uuid.uuid4()
    auth.add_user(user)
    auth.inject(fault)
    with pytest.raises(AuthUnavailable):
        await directory(auth).revoke(user, None)
    assert auth.users[user] == {"deleted": False}
    await directory(auth).revoke(user, None)  # the retry finishes it
    assert auth.users[user] == {"deleted": True}


async def test_a_wrong_key_is_auth_unavailable_not_success(auth: SupabaseAuthStandIn) -> None:
    user = uuid.uuid4()
    auth.add_user(user)
    with pytest.raises(AuthUnavailable):
        await directory(auth, key="anon").revoke(user, None)
    assert auth.users[user] == {"deleted": False}


async def test_nothing_listening_is_auth_unavailable() -> None:
    gone = SupabaseAccountDirectory("http://127.0.0.1:9", "svc", timeout=0.5)
    with pytest.raises(AuthUnavailable):
        await gone.revoke(uuid.uuid4(), None)
