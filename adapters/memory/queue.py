from __future__ import annotations

import asyncio
import uuid


class InMemoryJobQueue:
    """Records what was enqueued; ``drain()`` hands the job ids to a consumer."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[uuid.UUID, str, int]] = asyncio.Queue()
        self.enqueued: list[uuid.UUID] = []

    async def enqueue(self, job_id: uuid.UUID, *, kind: str, priority: int = 0) -> None:
        self.enqueued.append(job_id)
        await self.messages.put((job_id, kind, priority))

    def drain(self) -> list[uuid.UUID]:
        out = []
        while not self.messages.empty():
            out.append(self.messages.get_nowait()[0])
        return out
