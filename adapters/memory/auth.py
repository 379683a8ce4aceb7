from __future__ import annotations

from genstudio.core.model.errors import Unauthorized
from genstudio.ports.auth import Principal


class StaticTokenVerifier:
    """Opaque tokens mapped to principals: for tests that do not care about JWTs."""

    def __init__(self, tokens: dict[str, Principal] | None = None) -> None:
        self.tokens = dict(tokens or {})

    async def verify(self, token: str) -> Principal:
        principal = self.tokens.get(token)
        if principal is None:
            raise Unauthorized("invalid token")
        return principal
