"""Typed reads of environment variables, shared by the settings groups."""

from __future__ import annotations

from collections.abc import Mapping


class Env:
    """One environment (``os.environ`` or a test's dict); a value that does not parse
    stops the process with a message naming the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def opt(self, name: str) -> str | None:
        """The variable's value, None where it is unset or blank."""
        value = self._env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.opt(name) or default

    def number(self, name: str, default: float) -> float:
        raw = self.opt(name)
        if raw is None:
            return default
        try:
            return float(raw)
        except ValueError:
            raise SystemExit(f"{name} must be a number, not {raw!r}") from None

    def integer(self, name: str, default: int) -> int:
        return int(self.number(name, default))

    def switch(self, name: str, default: bool) -> bool:
        raw = self.opt(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "on", "true", "yes"):
            return True
        if raw.lower() in ("0", "off", "false", "no"):
            return False
        raise SystemExit(f"{name} must be on or off, not {raw!r}")
