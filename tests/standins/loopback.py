"""The loopback server every stand-in is built on: it ships in the testing kit
(``genstudio.testing.standins.loopback``, issue #23); this name keeps our own
stand-ins' imports working. One copy: the kit's."""

from genstudio.testing.standins.loopback import (
    Fail,
    Fault,
    LoopbackStandIn,
    RateLimit,
    Reply,
    Request,
    Stall,
    json_reply,
    read_body,
)

__all__ = [
    "Fail",
    "Fault",
    "LoopbackStandIn",
    "RateLimit",
    "Reply",
    "Request",
    "Stall",
    "json_reply",
    "read_body",
]
