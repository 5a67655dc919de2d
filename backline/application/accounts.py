"""Account use cases: register, authenticate, change settings, roles."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from backline.application.ports import Clock, PasswordHasher, SystemClock
from backline.application.store import EventStore, retrying
from backline.domain.account import (
    DEFAULT_LOCKOUT,
    Account,
    EmailIndex,
    LockoutPolicy,
    check_password_strength,
    clean_name,
    email_index_id,
    normalize_email,
)
from backline.domain.errors import Unauthorized

# Verified against when the email is unknown, so a wrong email costs the same time as a
# wrong password (no account enumeration by timing).
_DUMMY_PASSWORD = "backline-dummy-password-for-timing"  # noqa: S105


@dataclass(frozen=True)
class Registered:
    account_id: UUID
    email: str
    position: int


@dataclass(frozen=True)
class Authenticated:
    account_id: UUID
    position: int


class AccountService:
    def __init__(
        self,
        store: EventStore,
        hasher: PasswordHasher,
        clock: Clock | None = None,
        lockout: LockoutPolicy = DEFAULT_LOCKOUT,
    ) -> None:
        self.store = store
        self.hasher = hasher
        self.clock = clock or SystemClock()
        self.lockout = lockout
        self._dummy_hash: str | None = None

    # -- queries used by commands (never for listing) ------------------------------

    def account_id_for_email(self, email: str) -> UUID | None:
        index = self.store.find(email_index_id(normalize_email(email)), EmailIndex)
        return index.account_id if index is not None else None

    def get(self, account_id: UUID) -> Account:
        return self.store.get(account_id, Account, what="account")

    # -- commands ---------------------------------------------------------------------

    def register(
        self,
        email: str,
        password: str,
        first_name: str = "",
        last_name: str = "",
        *,
        is_admin: bool = False,
        provenance: str = "WEB",
    ) -> Registered:
        normalized = normalize_email(email)
        check_password_strength(password, email=normalized)
        first = clean_name(first_name, "first_name")
        last = clean_name(last_name, "last_name")
        password_hash = self.hasher.hash(password)

        def attempt() -> Registered:
            account = Account(
                email=normalized,
                password_hash=password_hash,
                first_name=first,
                last_name=last,
                is_admin=is_admin,
                provenance=provenance,
            )
            index = self.store.find(email_index_id(normalized), EmailIndex)
            if index is None:
                index = EmailIndex(email=normalized, account_id=account.id)
            else:
                index.reclaim(account.id)  # raises email_taken while claimed
            # On a race the store raises IntegrityError; ``retrying`` runs this again,
            # which then sees the other claim and answers email_taken.
            position = self.store.save_all(account, index)
            return Registered(account_id=account.id, email=normalized, position=position)

        return retrying(attempt)

    def authenticate(self, email: str, password: str, *, provenance: str = "WEB") -> Authenticated:
        """Check a password; count failures; lock after too many. Typed errors only."""
        try:
            normalized = normalize_email(email)
        except Exception:
            normalized = ""
        account_id = self.account_id_for_email(normalized) if normalized else None
        if account_id is None:
            self.hasher.verify(self._dummy(), password or "")
            raise Unauthorized("Invalid email or password.", code="invalid_credentials")

        def attempt() -> Authenticated:
            account = self.get(account_id)
            now = self.clock.now()
            account.ensure_not_locked(now)
            if not self.hasher.verify(account.password_hash, password or ""):
                account.record_failed_login(now, self.lockout)
                self.store.save_all(account)
                raise _WrongPassword
            account.record_login(now, provenance)
            if self.hasher.needs_rehash(account.password_hash):
                account.change_password_hash(self.hasher.hash(password))
            position = self.store.save_all(account)
            return Authenticated(account_id=account.id, position=position)

        try:
            return retrying(attempt)
        except _WrongPassword:
            raise Unauthorized("Invalid email or password.", code="invalid_credentials") from None

    def change_profile(
        self,
        account_id: UUID,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        avatar_url: str | None = None,
    ) -> int:
        def attempt() -> int:
            account = self.get(account_id)
            if not account.change_profile(first_name, last_name, avatar_url):
                return 0
            return self.store.save_all(account)

        return retrying(attempt)

    def change_password(self, account_id: UUID, current_password: str, new_password: str) -> int:
        account = self.get(account_id)
        if not self.hasher.verify(account.password_hash, current_password or ""):
            raise Unauthorized("Current password is wrong.", code="invalid_credentials")
        check_password_strength(new_password, email=account.email)
        new_hash = self.hasher.hash(new_password)

        def attempt() -> int:
            acc = self.get(account_id)
            acc.change_password_hash(new_hash)
            return self.store.save_all(acc)

        return retrying(attempt)

    def change_email(self, account_id: UUID, new_email: str, current_password: str) -> int:
        normalized = normalize_email(new_email)
        account = self.get(account_id)
        if not self.hasher.verify(account.password_hash, current_password or ""):
            raise Unauthorized("Current password is wrong.", code="invalid_credentials")

        def attempt() -> int:
            acc = self.get(account_id)
            old_index = self.store.get(email_index_id(acc.email), EmailIndex, what="account")
            new_index = self.store.find(email_index_id(normalized), EmailIndex)
            acc.change_email(normalized)
            if new_index is None:
                new_index = EmailIndex(email=normalized, account_id=acc.id)
            else:
                new_index.reclaim(acc.id)
            old_index.release()
            return self.store.save_all(acc, old_index, new_index)

        return retrying(attempt)

    def set_roles(
        self, account_id: UUID, *, is_admin: bool | None = None, is_patron: bool | None = None
    ) -> int:
        def attempt() -> int:
            account = self.get(account_id)
            account.set_roles(is_admin=is_admin, is_patron=is_patron)
            return self.store.save_all(account)

        return retrying(attempt)

    def _dummy(self) -> str:
        if self._dummy_hash is None:
            self._dummy_hash = self.hasher.hash(_DUMMY_PASSWORD)
        return self._dummy_hash


class _WrongPassword(Exception):
    """Internal: the failure was recorded; surface invalid_credentials."""


def new_id() -> UUID:
    return uuid4()
