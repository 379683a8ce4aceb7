from __future__ import annotations

import time

from genstudio.ports.storage import ObjectNotFound


class InMemoryStorage:
    def __init__(self, base_url: str = "memory://media") -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.base_url = base_url

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = (bytes(data), content_type)

    async def get(self, key: str) -> bytes:
        try:
            return self.objects[key][0]
        except KeyError:
            raise ObjectNotFound(key) from None

    async def signed_url(self, key: str, expires_in: int) -> str:
        if key not in self.objects:
            raise ObjectNotFound(key)
        return f"{self.base_url}/{key}?expires={int(time.time()) + expires_in}"

    async def delete(self, key: str) -> None:
        self.objects.pop(key, None)
