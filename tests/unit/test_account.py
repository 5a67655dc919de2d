"""Account aggregate: given events, when command, then events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from backline.domain.account import (
    Account,
    EmailIndex,
    LockoutPolicy,
    check_password_strength,
    clean_avatar,
    clean_name,
    email_index_id,
    normalize_email,
)
from backline.domain.errors import Conflict, Locked, ValidationFailed

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def new_account(**kw: object) -> Account:
    args: dict[str, object] = {
        "email": "ada@example.com",
        "password_hash": "$argon2id$fake",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "is_admin": False,
        "provenance": "WEB",
    }
    args.update(kw)
    return Account(**args)  # type: ignore[arg-type]


def events_of(account: Account) -> list[str]:
    return [type(e).__name__ for e in account.collect_events()]


def test_register_emits_registered_with_stable_topic() -> None:
    account = new_account()
    pending = account.collect_events()
    assert [type(e).__name__ for e in pending] == ["Registered"]
    assert type(pending[0]).TOPIC == "backline.Account.Registered"
    assert account.email == "ada@example.com"
    assert account.is_patron is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ada@Example.COM ", "ada@example.com"),
        ("x.y+tag@sub.domain.io", "x.y+tag@sub.domain.io"),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "nope", "a@b", "a@@b.com", "a b@c.com", "x" * 250 + "@ex.com", "@ex.com"]
)
def test_invalid_emails_refused(raw: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        normalize_email(raw)
    assert info.value.code == "invalid_email"


@pytest.mark.parametrize(
    "password",
    ["short", "aaaaaaaaaaaa", "ababababab", "password123", "ada@example.com", "x" * 2000],
)
def test_weak_passwords_refused(password: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        check_password_strength(password, email="ada@example.com")
    assert info.value.code == "weak_password"


def test_strong_password_accepted() -> None:
    check_password_strength("correct horse battery staple", email="ada@example.com")


def test_lockout_after_repeated_failures_then_expiry() -> None:
    policy = LockoutPolicy(max_failures=3, lock_for=timedelta(minutes=10))
    account = new_account()
    account.collect_events()
    assert account.record_failed_login(NOW, policy) is False
    assert account.record_failed_login(NOW, policy) is False
    assert account.record_failed_login(NOW, policy) is True
    with pytest.raises(Locked) as info:
        account.ensure_not_locked(NOW + timedelta(minutes=5))
    assert info.value.code == "account_locked"
    assert info.value.details["retry_after_seconds"] == 300
    with pytest.raises(Locked):
        account.record_login(NOW + timedelta(minutes=1), "WEB")
    # After the lock expires a correct password signs in and resets the counter.
    account.record_login(NOW + timedelta(minutes=11), "WEB")
    assert account.failed_logins == 0
    assert account.locked_until is None
    assert events_of(account) == ["LoginFailed", "LoginFailed", "LoginFailed", "LoggedIn"]


def test_failure_after_expired_lock_starts_fresh_count() -> None:
    policy = LockoutPolicy(max_failures=2, lock_for=timedelta(minutes=1))
    account = new_account()
    account.record_failed_login(NOW, policy)
    account.record_failed_login(NOW, policy)
    assert account.locked_until is not None
    assert account.record_failed_login(NOW + timedelta(minutes=2), policy) is False
    assert account.failed_logins == 1


def test_profile_change_is_noop_when_nothing_changes() -> None:
    account = new_account()
    account.collect_events()
    assert account.change_profile(first_name="Ada", last_name="Lovelace") is False
    assert account.collect_events() == []
    assert account.change_profile(first_name="  Augusta ") is True
    assert account.first_name == "Augusta"
    assert events_of(account) == ["ProfileChanged"]


def test_profile_validation() -> None:
    with pytest.raises(ValidationFailed):
        clean_name("x" * 101, "first_name")
    with pytest.raises(ValidationFailed):
        clean_name("bad\x00name", "first_name")
    with pytest.raises(ValidationFailed):
        clean_avatar("javascript:alert(1)")
    assert clean_avatar("https://cdn.example.com/a.png") == "https://cdn.example.com/a.png"


def test_email_index_is_deterministic_and_reclaimable() -> None:
    owner = uuid4()
    index = EmailIndex(email="ada@example.com", account_id=owner)
    assert index.id == email_index_id("ada@example.com")
    with pytest.raises(Conflict) as info:
        index.reclaim(uuid4())
    assert info.value.code == "email_taken"
    index.release()
    newcomer = uuid4()
    index.reclaim(newcomer)
    assert index.account_id == newcomer


def test_roles_change_only_when_different() -> None:
    account = new_account()
    account.collect_events()
    account.set_roles(is_admin=False)
    assert account.collect_events() == []
    account.set_roles(is_admin=True, is_patron=True)
    assert (account.is_admin, account.is_patron) == (True, True)
