"""Group commit: concurrent saves share one transaction, and a losing save fails alone."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError

from backline.application.store import GroupCommitter
from backline.domain.account import Account
from backline.infra.container import Container

PASSWORD = "correct horse battery staple"


def new_account(i: int) -> Account:
    return Account(
        email=f"user{i}@example.com",
        password_hash="h",
        first_name=f"F{i}",
        last_name="",
        is_admin=False,
        provenance="TEST",
    )


def test_concurrent_saves_each_get_their_own_contiguous_positions(container: Container) -> None:
    barrier = threading.Barrier(16)

    def save(i: int) -> tuple[Any, list[int]]:
        account = new_account(i)
        account.change_profile(last_name=f"L{i}")
        barrier.wait()
        recordings = container.store.save(account)
        return account.id, [r.notification.id for r in recordings]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(save, range(16)))
    all_ids = sorted(n for _, ids in results for n in ids)
    assert all_ids == list(range(1, 33))  # nothing lost, nothing twice
    for account_id, ids in results:
        assert ids[1] == ids[0] + 1  # one save's events stay together and in order
        notes = container.store.recorder.select_notifications(ids[0], 2)
        assert {n.originator_id for n in notes} == {account_id}
        assert [n.originator_version for n in notes] == [1, 2]


def test_a_losing_save_in_a_group_fails_alone(container: Container) -> None:
    a = container.accounts.register("ada@example.com", PASSWORD)
    first = container.accounts.get(a.account_id)
    second = container.accounts.get(a.account_id)  # same version: one of these must lose
    first.change_profile(first_name="First")
    second.change_profile(first_name="Second")
    others = [new_account(i) for i in range(6)]
    barrier = threading.Barrier(8)

    def save(obj: Any) -> str:
        barrier.wait()
        try:
            container.store.save(obj)
        except IntegrityError:
            return "conflict"
        return "ok"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(save, [first, second, *others]))
    assert sorted(outcomes[:2]) == ["conflict", "ok"]
    assert outcomes[2:] == ["ok"] * 6
    for other in others:
        assert container.accounts.get(other.id).first_name == other.first_name


class FakeLog:
    """A stand-in for EventStore.put that records the groups it is asked to write."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.gate = threading.Event()
        self.next_id = 0

    def put(self, events: list[Any]) -> list[Any]:
        if not self.groups:
            self.gate.wait(5)  # hold the first commit so the others queue behind it
        self.groups.append(list(events))
        if "bad" in events and len(events) > 1:
            raise IntegrityError("version taken")
        if events == ["bad"]:
            raise IntegrityError("version taken")
        out = []
        for e in events:
            self.next_id += 1
            out.append((e, self.next_id))
        return out


def test_saves_queued_behind_a_commit_go_in_one_group() -> None:
    log = FakeLog()
    committer = GroupCommitter(log.put)  # type: ignore[arg-type]
    results: dict[str, Any] = {}

    def save(name: str) -> None:
        try:
            results[name] = committer.record([name])
        except IntegrityError as e:
            results[name] = e

    first = threading.Thread(target=save, args=("a",))
    first.start()
    while not committer._commit_lock.locked():  # "a" is committing
        pass
    rest = [threading.Thread(target=save, args=(n,)) for n in ("b", "bad", "c")]
    for t in rest:
        t.start()
    while len(committer._queue) < 3:
        pass
    log.gate.set()
    for t in [first, *rest]:
        t.join(5)
    assert log.groups[0] == ["a"]
    assert sorted(log.groups[1]) == ["b", "bad", "c"]  # one transaction for the queue
    # The group failed on "bad": each save was retried alone; only "bad" fails.
    assert isinstance(results["bad"], IntegrityError)
    assert [e for e, _ in results["b"]] == ["b"]
    assert [e for e, _ in results["c"]] == ["c"]
    assert [e for e, _ in results["a"]] == ["a"]


def test_other_errors_reach_every_save_of_the_group() -> None:
    def broken(events: list[Any]) -> list[Any]:
        raise RuntimeError("database went away")

    committer = GroupCommitter(broken)  # type: ignore[arg-type]
    with pytest.raises(RuntimeError):
        committer.record(["x"])
    assert committer._queue == []
