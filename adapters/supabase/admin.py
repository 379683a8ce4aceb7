"""Supabase Auth's admin API: ending an account's sessions for good.

``DELETE {SUPABASE_URL}/auth/v1/admin/users/{id}`` with ``{"should_soft_delete":
true}``, authorised by the service role key (``apikey`` and ``Authorization:
Bearer``). Supabase Auth (GoTrue's ``adminUserDelete``) then, in one transaction,
marks the user deleted, soft-deletes their identities, deletes their MFA factors
and deletes every session and refresh token (``models.Logout``): no device can
refresh a token again, and the address can sign up afresh as a new user. A user
soft-deleted already answers 200 again (nothing changes); one that does not exist
answers 404, which is the same outcome here.

Why soft and not a hard delete: ``profiles.id`` references ``auth.users`` with
``ON DELETE CASCADE``, and a hard delete would take the profile row that the
ledger and the store transactions (kept for the books) still reference.

An access token already issued stays valid until it expires (Supabase's JWTs are
stateless; their lifetime is the project's JWT expiry, an hour by default).
"""

from __future__ import annotations

import logging
import uuid

import httpx

from genstudio.core.model.safety import AuthUnavailable

log = logging.getLogger("genstudio.accounts")

TIMEOUT_S = 10.0


class SupabaseAccountDirectory:
    def __init__(
        self,
        url: str,
        service_key: str,
        *,
        timeout: float = TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = f"{url.rstrip('/')}/auth/v1"
        self.service_key = service_key
        self.timeout = timeout
        self.transport = transport

    async def revoke(self, user_id: uuid.UUID, access_token: str | None) -> None:
        del access_token  # the admin API ends every session without it
        headers = {"apikey": self.service_key, "Authorization": f"Bearer {self.service_key}"}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as http:
                answer = await http.request(
                    "DELETE",
                    f"{self.base}/admin/users/{user_id}",
                    json={"should_soft_delete": True},
                    headers=headers,
                )
        except httpx.HTTPError as exc:
            log.warning("Supabase Auth did not answer", extra={"error": type(exc).__name__})
            raise AuthUnavailable("the sign-in service did not answer; retry") from None
        if answer.status_code in (200, 204, 404):
            return
        log.warning(
            "Supabase Auth refused to delete a user",
            extra={"status": answer.status_code, "body": answer.text[:200]},
        )
        raise AuthUnavailable(f"the sign-in service answered {answer.status_code}; retry")
