"""The embedded default's account directory: tokens are minted locally (``genstudio
token``) and expire on their own, so there are no sessions to end; it remembers whom
it was asked to revoke (tests read ``revoked``)."""

from __future__ import annotations

import uuid


class LocalAccountDirectory:
    def __init__(self) -> None:
        self.revoked: list[uuid.UUID] = []

    async def revoke(self, user_id: uuid.UUID, access_token: str | None) -> None:
        self.revoked.append(user_id)
