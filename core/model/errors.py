"""Typed domain errors. The HTTP edge maps each to a status code in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose."""

    code = "domain_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    """A request the domain refuses; ``field`` names the part at fault."""

    code = "invalid_input"


class InsufficientCredits(DomainError):
    code = "insufficient_credits"

    def __init__(self, *, required: int, available: int) -> None:
        super().__init__(f"this needs {required} credits; the balance is {available}")
        self.required = required
        self.available = available


class IllegalTransition(DomainError):
    code = "illegal_transition"


class JobFinished(IllegalTransition):
    """The job already reached a terminal state; nothing more can happen to it."""

    code = "job_finished"


class ConcurrencyConflict(DomainError):
    """Another writer changed the row first (optimistic version check failed)."""

    code = "concurrency_conflict"


class IdempotencyInProgress(DomainError):
    """A request with the same idempotency key is being processed right now."""

    code = "idempotency_in_progress"


class IdempotencyMismatch(DomainError):
    """The idempotency key was used before with a different request body."""

    code = "idempotency_mismatch"


class Unauthorized(DomainError):
    code = "unauthorized"


class Forbidden(DomainError):
    code = "forbidden"


class DuplicateEntry(DomainError):
    """A ledger entry with that idempotency key already exists for the user."""

    code = "duplicate_entry"


class PurchaseOwnedElsewhere(DomainError):
    """The store transaction (or subscription) belongs to another account."""

    code = "purchase_owned_elsewhere"


class InvalidPurchase(DomainError):
    """The store's signed data or answer does not prove a purchase for this app and user."""

    code = "invalid_purchase"


class StoreUnavailable(DomainError):
    """The store's API did not answer usefully; the same request may be retried."""

    code = "store_unavailable"


class TooLarge(DomainError):
    """A request, or the part of it ``field`` names, is larger than accepted (an
    upload over its limit, refused as it arrives: nothing of it is kept)."""

    code = "too_large"


class AlreadyTaken(DomainError):
    """A unique name or slot is someone else's (a username; an asset already
    published); ``field`` names it."""

    code = "already_taken"
