"""Authentication: bearer tokens to principals."""

from __future__ import annotations

import uuid
from typing import Protocol

import msgspec


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    email: str | None = None
    role: str = "authenticated"
    #: when the token stops being valid (seconds since the epoch; None: it does not say).
    #: A long-lived connection (WS /v1/realtime) ends then.
    expires_at: float | None = None

    @property
    def is_service(self) -> bool:
        return self.role == "service_role"


class AuthVerifier(Protocol):
    async def verify(self, token: str) -> Principal:
        """Raises core.errors.Unauthorized for a missing, forged, expired or foreign token."""
        ...
