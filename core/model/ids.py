"""Identifiers: random ones (``new_id``, UUID version 4) and time-ordered ones
(``uuid7``, RFC 9562) for rows read back in order.

Two ledger entries written in one transaction share their ``created_at``; ordering by
(created_at, id) with these ids keeps them in the order they were written.

Both draw their randomness from the operating system (``os.urandom``, as
``uuid.uuid4`` does) but 4 KiB at a time: a submission makes five ids, and one
``getrandom`` call each was ~5% of its CPU (docs/performance.md). A forked child
forgets the parent's unused bytes, so the two never hand out the same ones.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0

_POOL = 4096  # bytes of OS randomness read at once
_random = b""
_offset = 0


def _forget() -> None:
    global _lock, _random, _offset
    _lock = threading.Lock()  # another thread may have held it at the fork
    _random, _offset = b"", 0


os.register_at_fork(after_in_child=_forget)


def random_bytes(n: int) -> bytes:
    """``n`` bytes from the operating system's CSPRNG (``n`` at most 4096)."""
    global _random, _offset
    if not 0 <= n <= _POOL:
        raise ValueError(f"at most {_POOL} bytes at a time, not {n}")
    with _lock:
        if _offset + n > len(_random):
            _random, _offset = os.urandom(_POOL), 0
        out = _random[_offset : _offset + n]
        _offset += n
    return out


def new_id() -> uuid.UUID:
    """A random UUID, version 4, as ``uuid.uuid4()`` makes it."""
    return uuid.UUID(bytes=random_bytes(16), version=4)


def uuid7() -> uuid.UUID:
    """48 bits of Unix milliseconds, then a 12-bit counter (monotonic within a
    millisecond, in this process), then 62 random bits."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # more than 4096 ids in one millisecond: borrow the next
                ms += 1
                _counter = 0
        else:
            _counter = 0
        _last_ms = ms
        counter = _counter
    rand = int.from_bytes(random_bytes(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    return uuid.UUID(int=value)
