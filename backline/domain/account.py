"""The Account aggregate and the email index that keeps emails unique.

Pure domain: no I/O. Passwords arrive already hashed (the hashing is a port); time
arrives as an argument so rules such as lockout are deterministic and testable.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, Locked, ValidationFailed

EMAIL_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/account-email")

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_URL_LENGTH = 2048

_EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)

# A short list of passwords that appear at the top of every breach corpus. The length
# rule already rejects most of them; these are the long ones people still pick.
_COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "password1234",
        "1234567890",
        "12345678910",
        "qwertyuiop",
        "iloveyou123",
        "passw0rd123",
        "abcdefghij",
        "0123456789",
        "qwerty12345",
        "qwerty123456",
        "letmein1234",
        "welcome123",
        "administrator",
        "superman123",
    }
)


@dataclass(frozen=True)
class LockoutPolicy:
    """How many consecutive failures lock an account, and for how long."""

    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)


DEFAULT_LOCKOUT = LockoutPolicy()


def normalize_email(raw: str) -> str:
    """Trim, NFKC-normalise and lower-case an email; refuse malformed ones."""
    if not isinstance(raw, str):
        raise ValidationFailed("Email must be a string.", code="invalid_email", field="email")
    email = unicodedata.normalize("NFKC", raw).strip().lower()
    if not email:
        raise ValidationFailed("Email is required.", code="invalid_email", field="email")
    if len(email) > MAX_EMAIL_LENGTH:
        raise ValidationFailed(
            f"Email must be at most {MAX_EMAIL_LENGTH} characters.",
            code="invalid_email",
            field="email",
        )
    if not _EMAIL_RE.match(email):
        raise ValidationFailed("Email is not a valid address.", code="invalid_email", field="email")
    return email


def email_index_id(email: str) -> UUID:
    """Deterministic id of the index aggregate guarding one (normalised) email."""
    return uuid5(EMAIL_NAMESPACE, email)


def check_password_strength(password: str, *, email: str = "") -> None:
    """Refuse passwords that are short, repetitive, common or equal to the email."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be at least {MIN_PASSWORD_LENGTH} characters.",
            code="weak_password",
            field="password",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"Password must be at most {MAX_PASSWORD_LENGTH} characters.",
            code="weak_password",
            field="password",
        )
    lowered = password.lower()
    if len(set(lowered)) < 4:
        raise ValidationFailed(
            "Password is too repetitive; use at least 4 different characters.",
            code="weak_password",
            field="password",
        )
    if lowered in _COMMON_PASSWORDS:
        raise ValidationFailed(
            "Password is one of the most common passwords.", code="weak_password", field="password"
        )
    if email and (lowered == email.lower() or lowered == email.split("@")[0].lower()):
        raise ValidationFailed(
            "Password must not be your email address.", code="weak_password", field="password"
        )


def clean_name(value: str | None, field: str) -> str:
    """Trim a person's name; refuse over-long names and control characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(f"{field} must be a string.", code="invalid_field", field=field)
    cleaned = unicodedata.normalize("NFC", value).strip()
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            f"{field} must be at most {MAX_NAME_LENGTH} characters.",
            code="invalid_field",
            field=field,
        )
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise ValidationFailed(
            f"{field} must not contain control characters.", code="invalid_field", field=field
        )
    return cleaned


def clean_avatar(value: str | None) -> str:
    if value is None:
        return ""
    cleaned = value.strip()
    if len(cleaned) > MAX_URL_LENGTH:
        raise ValidationFailed("avatar_url is too long.", code="invalid_field", field="avatar_url")
    if cleaned and not (cleaned.startswith("https://") or cleaned.startswith("/api/files/")):
        raise ValidationFailed(
            "avatar_url must be an https URL or one of your uploaded files.",
            code="invalid_field",
            field="avatar_url",
        )
    return cleaned


class Account(Aggregate):
    """A musician's (or operator's) account. Identity for every other aggregate."""

    TOPIC = "backline.Account"

    class Created(Aggregate.Created):
        TOPIC = "backline.Account.Created"

    class Event(Aggregate.Event):
        pass

    class Registered(Created):
        TOPIC = "backline.Account.Registered"
        email: str
        password_hash: str
        first_name: str
        last_name: str
        is_admin: bool
        provenance: str

    @event(Registered)
    def __init__(
        self,
        email: str,
        password_hash: str,
        first_name: str,
        last_name: str,
        is_admin: bool,
        provenance: str,
    ) -> None:
        self.email = email
        self.password_hash = password_hash
        self.first_name = first_name
        self.last_name = last_name
        self.is_admin = is_admin
        self.is_patron = False
        self.avatar_url = ""
        self.provenance = provenance
        self.failed_logins = 0
        self.locked_until: datetime | None = None

    # -- sign-in -----------------------------------------------------------------

    def ensure_not_locked(self, now: datetime) -> None:
        if self.locked_until is not None and now < self.locked_until:
            retry = max(1, int((self.locked_until - now).total_seconds()))
            raise Locked(
                "Account is temporarily locked after repeated failed sign-ins.",
                retry_after_seconds=retry,
            )

    class LoginFailed(Event):
        TOPIC = "backline.Account.LoginFailed"
        failures: int
        locked_until: datetime | None

    @event(LoginFailed)
    def _login_failed(self, failures: int, locked_until: datetime | None) -> None:
        self.failed_logins = failures
        self.locked_until = locked_until

    def record_failed_login(self, now: datetime, policy: LockoutPolicy = DEFAULT_LOCKOUT) -> bool:
        """Count a wrong password; returns True when this failure locks the account."""
        failures = self.failed_logins + 1
        if self.locked_until is not None and now >= self.locked_until:
            failures = 1  # a lock that expired starts a fresh count
        locked_until = now + policy.lock_for if failures >= policy.max_failures else None
        self._login_failed(failures=failures, locked_until=locked_until)
        return locked_until is not None

    class LoggedIn(Event):
        TOPIC = "backline.Account.LoggedIn"
        provenance: str

    @event(LoggedIn)
    def _logged_in(self, provenance: str) -> None:
        self.failed_logins = 0
        self.locked_until = None

    def record_login(self, now: datetime, provenance: str) -> None:
        self.ensure_not_locked(now)
        self._logged_in(provenance=provenance)

    # -- profile and settings --------------------------------------------------

    class ProfileChanged(Event):
        TOPIC = "backline.Account.ProfileChanged"
        first_name: str
        last_name: str
        avatar_url: str

    @event(ProfileChanged)
    def _profile_changed(self, first_name: str, last_name: str, avatar_url: str) -> None:
        self.first_name = first_name
        self.last_name = last_name
        self.avatar_url = avatar_url

    def change_profile(
        self,
        first_name: str | None = None,
        last_name: str | None = None,
        avatar_url: str | None = None,
    ) -> bool:
        """Apply the given fields (None = unchanged). Returns False when nothing changed."""
        new_first = self.first_name if first_name is None else clean_name(first_name, "first_name")
        new_last = self.last_name if last_name is None else clean_name(last_name, "last_name")
        new_avatar = self.avatar_url if avatar_url is None else clean_avatar(avatar_url)
        if (new_first, new_last, new_avatar) == (self.first_name, self.last_name, self.avatar_url):
            return False
        self._profile_changed(first_name=new_first, last_name=new_last, avatar_url=new_avatar)
        return True

    class PasswordChanged(Event):
        TOPIC = "backline.Account.PasswordChanged"
        password_hash: str

    @event(PasswordChanged)
    def change_password_hash(self, password_hash: str) -> None:
        self.password_hash = password_hash

    class EmailChanged(Event):
        TOPIC = "backline.Account.EmailChanged"
        old_email: str
        email: str

    @event(EmailChanged)
    def _email_changed(self, old_email: str, email: str) -> None:
        self.email = email

    def change_email(self, email: str) -> None:
        if email == self.email:
            raise Conflict("That is already your email.", code="email_unchanged", field="email")
        self._email_changed(old_email=self.email, email=email)

    class RolesChanged(Event):
        TOPIC = "backline.Account.RolesChanged"
        is_admin: bool
        is_patron: bool

    @event(RolesChanged)
    def _roles_changed(self, is_admin: bool, is_patron: bool) -> None:
        self.is_admin = is_admin
        self.is_patron = is_patron

    def set_roles(self, *, is_admin: bool | None = None, is_patron: bool | None = None) -> None:
        admin = self.is_admin if is_admin is None else is_admin
        patron = self.is_patron if is_patron is None else is_patron
        if (admin, patron) != (self.is_admin, self.is_patron):
            self._roles_changed(is_admin=admin, is_patron=patron)


class EmailIndex(Aggregate):
    """Claims one normalised email for one account.

    Its id is ``uuid5(EMAIL_NAMESPACE, email)``, so two registrations of one email
    race to create the same aggregate at version 1 and the store lets exactly one win.
    A released claim (after an email change) can be taken again.
    """

    TOPIC = "backline.EmailIndex"

    class Created(Aggregate.Created):
        TOPIC = "backline.EmailIndex.Created"

    class Event(Aggregate.Event):
        pass

    class Claimed(Created):
        TOPIC = "backline.EmailIndex.Claimed"
        email: str
        account_id: UUID

    @staticmethod
    def create_id(email: str) -> UUID:
        return email_index_id(email)

    @event(Claimed)
    def __init__(self, email: str, account_id: UUID) -> None:
        self.email = email
        self.account_id: UUID | None = account_id

    class Released(Event):
        TOPIC = "backline.EmailIndex.Released"

    @event(Released)
    def release(self) -> None:
        self.account_id = None

    class Reclaimed(Event):
        TOPIC = "backline.EmailIndex.Reclaimed"
        account_id: UUID

    @event(Reclaimed)
    def _reclaimed(self, account_id: UUID) -> None:
        self.account_id = account_id

    def reclaim(self, account_id: UUID) -> None:
        if self.account_id is not None:
            raise Conflict("An account with this email already exists.", code="email_taken")
        self._reclaimed(account_id=account_id)
