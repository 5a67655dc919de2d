"""Domain errors: every rule the domain refuses carries a stable machine code.

The API layer maps each class to its surface's error shape; the code string is the
contract (``email_taken``, ``weak_password``, ``account_locked`` ...).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A business rule refused a command. ``code`` is stable and public."""

    code: str = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details: dict[str, Any] = details


class ValidationFailed(DomainError):
    """Input is well-formed but breaks a rule (maps to 422 / invalid params)."""

    code = "validation_failed"


class NotFound(DomainError):
    """The thing does not exist *for this principal* (maps to 404)."""

    code = "not_found"


class Conflict(DomainError):
    """The command conflicts with current state (maps to 409)."""

    code = "conflict"


class Unauthorized(DomainError):
    """Credentials are missing or wrong (maps to 401)."""

    code = "unauthorized"


class Forbidden(DomainError):
    """The principal may not do this (maps to 403)."""

    code = "forbidden"


class Locked(DomainError):
    """The account is temporarily locked (maps to 423 on REST, typed code on MCP)."""

    code = "account_locked"


class RateLimited(DomainError):
    """Too many requests (maps to 429)."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int, **details: Any) -> None:
        super().__init__(message, retry_after_seconds=retry_after_seconds, **details)
        self.retry_after_seconds = retry_after_seconds
