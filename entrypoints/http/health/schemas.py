"""Health answers."""

from __future__ import annotations

import msgspec


class Health(msgspec.Struct):
    status: str
    checks: dict[str, str] = {}
