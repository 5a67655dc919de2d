"""Argon2id password hashing (memory-hard KDF), via argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher as _Argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError


class Argon2Hasher:
    """Argon2id with RFC 9106's second recommended profile (64 MiB, t=3, p=4).

    ``fast=True`` is for tests and benchmarks only: same algorithm, small memory.
    """

    def __init__(self, *, fast: bool = False) -> None:
        if fast:
            self._impl = _Argon2(time_cost=1, memory_cost=8192, parallelism=1)
        else:
            self._impl = _Argon2(time_cost=3, memory_cost=65536, parallelism=4)

    def hash(self, password: str) -> str:
        return self._impl.hash(password)

    def verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._impl.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        try:
            return self._impl.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True
