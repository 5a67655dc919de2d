"""Ports: what the application needs from the outside world, as Protocols."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class PasswordHasher(Protocol):
    """A memory-hard password KDF."""

    def hash(self, password: str) -> str: ...

    def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)
