"""The metrics port in memory: what was recorded, for tests (and a no-op elsewhere)."""

from __future__ import annotations

from collections import Counter

from genstudio.ports.metrics import AttemptOutcome, CreditFlow, JobOutcome, PushStage


class MemoryMetrics:
    """Counts every recording; ``runs`` keeps the run times, ``waits`` the queue waits."""

    def __init__(self) -> None:
        self.submitted: Counter[str] = Counter()
        self.claimed: Counter[str] = Counter()
        self.waits: list[tuple[str, float]] = []
        self.attempts: Counter[tuple[str, str, str, str]] = Counter()
        self.runs: list[tuple[str, str, float]] = []
        self.finished: Counter[tuple[str, str]] = Counter()
        self.credits: Counter[str] = Counter()
        self.pushed = 0
        self.push_errors: Counter[tuple[str, str]] = Counter()
        self.breakers: dict[str, str] = {}

    def job_submitted(self, kind: str) -> None:
        self.submitted[kind] += 1

    def job_claimed(self, kind: str, waited_seconds: float) -> None:
        self.claimed[kind] += 1
        self.waits.append((kind, waited_seconds))

    def attempt_ended(
        self,
        *,
        kind: str,
        provider: str,
        outcome: AttemptOutcome,
        reason: str,
        run_seconds: float | None,
    ) -> None:
        self.attempts[(kind, provider, outcome.value, reason)] += 1
        if run_seconds is not None:
            self.runs.append((kind, provider, run_seconds))

    def job_finished(self, *, kind: str, outcome: JobOutcome) -> None:
        self.finished[(kind, outcome.value)] += 1

    def credits_moved(self, flow: CreditFlow, amount: int) -> None:
        self.credits[flow.value] += amount

    def push_sent(self, count: int) -> None:
        self.pushed += count

    def push_failed(self, stage: PushStage, error: str, count: int) -> None:
        self.push_errors[(stage.value, error)] += count

    def breaker_state(self, provider: str, state: str) -> None:
        self.breakers[provider] = state
