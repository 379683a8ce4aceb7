"""The identity provider's side of an account: ending its sessions for good."""

from __future__ import annotations

import uuid
from typing import Protocol


class AccountDirectory(Protocol):
    async def revoke(self, user_id: uuid.UUID, access_token: str | None) -> None:
        """End every session of the user (refresh tokens revoked on every device) and
        stop the account signing in again. ``access_token`` is the user's own token of
        the request, where the provider signs out with it.

        Idempotent: a user who is gone already is not an error. Raises
        genstudio.core.model.safety.AuthUnavailable when the provider did not confirm (down,
        timing out, refusing our key): the caller's request may be retried."""
        ...
