"""The IETF rate limit header fields (draft-ietf-httpapi-ratelimit-headers-10).

Both are Structured Field Lists (RFC 9651) of the policies a request spent, each an
sf-string naming the policy with parameters:

- ``RateLimit-Policy: "reads-user";q=240;w=60, "reads-ip";q=2400;w=60``: the quota
  (``q``, requests) and its window (``w``, seconds);
- ``RateLimit: "reads-user";r=239;t=60``: what remains (``r``) and the seconds until
  the quota is restored (``t``; the oldest request leaving the moving window).

A refusal also carries ``Retry-After`` (RFC 9110) in seconds.
"""

from __future__ import annotations

from collections.abc import Sequence

from genstudio.core.model.limits import Limit, RateLimited, Usage


def policy_field(spent: Sequence[tuple[Limit, Usage]]) -> str:
    return ", ".join(
        f'"{limit.name}";q={limit.budget.amount};w={limit.budget.seconds}' for limit, _ in spent
    )


def rate_field(spent: Sequence[tuple[Limit, Usage]]) -> str:
    return ", ".join(
        f'"{limit.name}";r={usage.remaining};t={usage.reset_after}' for limit, usage in spent
    )


def fields(spent: Sequence[tuple[Limit, Usage]]) -> dict[str, str]:
    if not spent:
        return {}
    return {"RateLimit-Policy": policy_field(spent), "RateLimit": rate_field(spent)}


def refusal_fields(exc: RateLimited) -> dict[str, str]:
    """The headers of a 429: the spent policy at zero, and when to retry."""
    spent = [(exc.limit, exc.usage)]
    return {"Retry-After": str(exc.retry_after), **fields(spent)}
