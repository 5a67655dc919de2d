"""Event store on SQLite and PostgreSQL: atomic saves, uniqueness races, retries."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from eventsourcing.persistence import IntegrityError

from backline.application.store import retrying
from backline.domain.account import Account, EmailIndex
from backline.domain.errors import Conflict, DomainError, Unauthorized
from backline.infra.container import Container

PASSWORD = "correct horse battery staple"


def test_register_and_load_back(container: Container) -> None:
    result = container.accounts.register("Ada@Example.com", PASSWORD, "Ada", "Lovelace")
    account = container.accounts.get(result.account_id)
    assert account.email == "ada@example.com"
    assert container.accounts.account_id_for_email("ADA@example.com") == result.account_id
    topics = [n.topic for n in container.store.recorder.select_notifications(1, 10)]
    assert topics == ["backline.Account.Registered", "backline.EmailIndex.Claimed"]
    assert result.position == 2


def test_two_aggregates_commit_atomically(container: Container) -> None:
    container.accounts.register("ada@example.com", PASSWORD)
    before = container.store.max_position()
    # A second account claiming the same email: the index insert conflicts, so the new
    # account's Registered event must not be stored either.
    intruder = Account(
        email="ada@example.com",
        password_hash="h",
        first_name="",
        last_name="",
        is_admin=False,
        provenance="WEB",
    )
    index = EmailIndex(email="ada@example.com", account_id=intruder.id)
    with pytest.raises(IntegrityError):
        container.store.save_all(intruder, index)
    assert container.store.max_position() == before
    assert container.store.find(intruder.id, Account) is None


def test_concurrent_registration_of_one_email_exactly_one_wins(container: Container) -> None:
    barrier = threading.Barrier(12)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            container.accounts.register("race@example.com", PASSWORD, f"n{i}")
        except DomainError as e:
            return e.code
        return "ok"

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(attempt, range(12)))
    assert results.count("ok") == 1, results
    assert set(results) - {"ok"} == {"email_taken"}
    registered = [
        n
        for n in container.store.recorder.select_notifications(1, 1000)
        if n.topic == "backline.Account.Registered"
    ]
    assert len(registered) == 1


def test_duplicate_email_is_email_taken(container: Container) -> None:
    container.accounts.register("ada@example.com", PASSWORD)
    with pytest.raises(Conflict) as info:
        container.accounts.register(" ADA@example.com", PASSWORD)
    assert info.value.code == "email_taken"


def test_wrong_password_and_unknown_email_look_the_same(container: Container) -> None:
    container.accounts.register("ada@example.com", PASSWORD)
    with pytest.raises(Unauthorized) as a:
        container.accounts.authenticate("ada@example.com", "wrong password!!")
    with pytest.raises(Unauthorized) as b:
        container.accounts.authenticate("nobody@example.com", "wrong password!!")
    assert a.value.code == b.value.code == "invalid_credentials"
    assert a.value.message == b.value.message


def test_lockout_survives_reload(container: Container) -> None:
    result = container.accounts.register("ada@example.com", PASSWORD)
    for _ in range(5):
        with pytest.raises(Unauthorized):
            container.accounts.authenticate("ada@example.com", "wrong password!!")
    with pytest.raises(DomainError) as info:
        container.accounts.authenticate("ada@example.com", PASSWORD)
    assert info.value.code == "account_locked"
    assert container.accounts.get(result.account_id).locked_until is not None


def test_version_race_is_retried(container: Container) -> None:
    result = container.accounts.register("ada@example.com", PASSWORD)
    calls = {"n": 0}

    def change() -> int:
        calls["n"] += 1
        mine = container.accounts.get(result.account_id)
        if calls["n"] == 1:  # someone else commits between our load and our save
            container.accounts.change_profile(result.account_id, first_name="Other")
        mine.change_profile(last_name=f"Mine{calls['n']}")
        return container.store.save_all(mine)

    retrying(change)
    assert calls["n"] == 2
    account = container.accounts.get(result.account_id)
    assert (account.first_name, account.last_name) == ("Other", "Mine2")


def test_endless_race_ends_in_typed_conflict() -> None:
    def always_races() -> int:
        raise IntegrityError("version taken")

    with pytest.raises(Conflict) as info:
        retrying(always_races, attempts=3)
    assert info.value.code == "concurrent_modification"


def test_change_email_moves_the_claim(container: Container) -> None:
    a = container.accounts.register("ada@example.com", PASSWORD)
    container.accounts.change_email(a.account_id, "augusta@example.com", PASSWORD)
    assert container.accounts.account_id_for_email("augusta@example.com") == a.account_id
    assert container.accounts.account_id_for_email("ada@example.com") is None
    # The released email can be registered again by someone else.
    b = container.accounts.register("ada@example.com", PASSWORD)
    assert container.accounts.account_id_for_email("ada@example.com") == b.account_id


def test_no_unbounded_repository_cache(container: Container) -> None:
    # eventsourcing reads AGGREGATE_CACHE_MAXSIZE=0 as "unbounded"; the store keeps none.
    assert container.store.repository.cache is None
    a = container.accounts.register("ada@example.com", PASSWORD)
    other = Container.build(container.settings)
    try:
        other.accounts.change_profile(a.account_id, first_name="Changed elsewhere")
    finally:
        other.close()
    assert container.accounts.get(a.account_id).first_name == "Changed elsewhere"


def test_event_log_commits_are_durable_and_read_side_commits_asynchronous(
    pg_url: str, tmp_path: Path
) -> None:
    from tests.conftest import make_settings

    c = Container.build(make_settings(pg_url, tmp_path))
    try:
        with c.read.read() as tx:
            assert tx.fetchone("SHOW synchronous_commit") == ("off",)
        with c.store.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute("SHOW synchronous_commit").fetchone()
            assert row is not None
            assert list(dict(row).values()) == ["on"]
    finally:
        c.close()
