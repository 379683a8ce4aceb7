"""The ledger's invariants, checked in SQL against a real database after a scenario."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import psycopg


def assert_ledger_invariants(pg_url: str, users: Iterable[uuid.UUID] | None = None) -> None:
    """For every user (or those given):
    - the balance equals the sum of the entries and the sum of the lots' remainders;
    - it is never negative;
    - every hold has one hold entry, and at most one settle or release, never both;
    - a finished job's hold ended the right way: settled on success, released otherwise;
    - no credits were created: every positive entry is a grant/purchase/allowance/
      refund/adjustment or a release of a hold.
    """
    with psycopg.connect(pg_url) as conn:
        ids = (
            list(users)
            if users is not None
            else [r[0] for r in conn.execute("SELECT id FROM profiles").fetchall()]
        )
        for user in ids:
            credits, ledger_sum, lots_sum = conn.execute(
                """
                SELECT p.credits,
                       (SELECT coalesce(sum(amount), 0) FROM credit_ledger WHERE user_id = p.id),
                       (SELECT coalesce(sum(remaining), 0) FROM credit_lots WHERE user_id = p.id)
                FROM profiles p WHERE p.id = %s
                """,
                (user,),
            ).fetchone() or (None, None, None)
            assert credits is not None, f"no profile {user}"
            assert credits >= 0
            assert credits == ledger_sum == lots_sum, (user, credits, ledger_sum, lots_sum)
            bad_holds = conn.execute(
                """
                SELECT h.id, h.status,
                       count(*) FILTER (WHERE e.kind = 'hold'),
                       count(*) FILTER (WHERE e.kind = 'settle'),
                       count(*) FILTER (WHERE e.kind = 'release')
                FROM credit_holds h JOIN credit_ledger e ON e.hold_id = h.id
                WHERE h.user_id = %s
                GROUP BY h.id, h.status
                HAVING count(*) FILTER (WHERE e.kind = 'hold') <> 1
                    OR count(*) FILTER (WHERE e.kind = 'settle')
                       + count(*) FILTER (WHERE e.kind = 'release') > 1
                    OR (h.status = 'settled') <> (count(*) FILTER (WHERE e.kind = 'settle') = 1)
                    OR (h.status = 'released') <> (count(*) FILTER (WHERE e.kind = 'release') = 1)
                """,
                (user,),
            ).fetchall()
            assert bad_holds == [], bad_holds
            mismatched = conn.execute(
                """
                SELECT j.id, j.status, h.status FROM jobs j JOIN credit_holds h ON h.id = j.hold_id
                WHERE j.user_id = %s AND (
                    (j.status = 'succeeded' AND h.status <> 'settled')
                    OR (j.status IN ('failed', 'cancelled') AND h.status <> 'released')
                    OR (j.status IN ('queued', 'dispatched', 'running') AND h.status <> 'open'))
                """,
                (user,),
            ).fetchall()
            assert mismatched == [], mismatched
