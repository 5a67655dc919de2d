"""Projection framework on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backline.domain.account import Account, EmailIndex
from backline.infra.container import Container
from tests.conftest import ROOT, make_settings

PASSWORD = "correct horse battery staple"


def seed_accounts(container: Container, n: int, chunk: int = 500) -> None:
    """Write n registrations (+ a profile change each) straight through the store."""
    for start in range(0, n, chunk):
        batch: list[Any] = []
        for i in range(start, min(n, start + chunk)):
            email = f"user{i}@example.com"
            account = Account(
                email=email,
                password_hash="h",
                first_name=f"F{i}",
                last_name="",
                is_admin=False,
                provenance="SEED",
            )
            account.change_profile(last_name=f"L{i}")
            batch += [account, EmailIndex(email=email, account_id=account.id)]
        container.store.save_all(*batch)


def profile_rows(container: Container) -> list[tuple[Any, ...]]:
    with container.read.read() as tx:
        return tx.fetchall(
            "SELECT id, email, first_name, last_name, avatar_url, is_patron, is_admin, "
            "provenance, created_at FROM account_profiles ORDER BY id"
        )


def test_catch_up_builds_profiles_and_tracks_position(container: Container) -> None:
    a = container.accounts.register("ada@example.com", PASSWORD, "Ada", "Lovelace")
    container.accounts.change_profile(a.account_id, first_name="Augusta")
    assert container.profiles.get(a.account_id) is None
    container.runner.catch_up()
    row = container.profiles.get(a.account_id)
    assert row is not None
    assert (row["first_name"], row["last_name"], row["is_admin"]) == ("Augusta", "Lovelace", False)
    status = next(s for s in container.runner.status() if s.name == "profiles")
    assert status.lag == 0
    assert status.position == container.store.max_position()


def test_rebuild_equals_incremental(container: Container) -> None:
    seed_accounts(container, 1200)
    a = container.accounts.register("ada@example.com", PASSWORD)
    container.accounts.set_roles(a.account_id, is_admin=True, is_patron=True)
    container.accounts.change_email(a.account_id, "augusta@example.com", PASSWORD)
    # Incremental, in small batches.
    while container.runner.process_batch("profiles", batch_size=97):
        pass
    incremental = profile_rows(container)
    assert len(incremental) == 1201
    rebuilt_count = container.runner.rebuild("profiles")
    assert rebuilt_count > 0
    assert profile_rows(container) == incremental
    row = container.profiles.get(a.account_id)
    assert row is not None
    assert row["email"] == "augusta@example.com"
    assert row["is_patron"] is True


def test_failure_inside_a_batch_rolls_back_rows_and_position(container: Container) -> None:
    seed_accounts(container, 300)

    def boom(name: str, position: int) -> None:
        raise RuntimeError("crash before commit")

    container.runner.before_commit = boom
    with pytest.raises(RuntimeError):
        container.runner.process_batch("profiles", batch_size=100)
    assert container.runner.position("profiles") == 0
    assert profile_rows(container) == []
    container.runner.before_commit = None
    container.runner.catch_up()
    after = profile_rows(container)
    container.runner.rebuild("profiles")
    assert profile_rows(container) == after
    assert len(after) == 300


def test_two_runners_never_apply_a_batch_twice(container: Container, tmp_path: Path) -> None:
    seed_accounts(container, 1000)
    settings = make_settings(container.settings.database_url, tmp_path / "other")
    other = Container.build(settings)
    applied: list[tuple[str, int]] = []
    lock = threading.Lock()

    def count(name: str, position: int) -> None:
        with lock:
            applied.append((name, position))

    container.runner.before_commit = count
    other.runner.before_commit = count
    try:
        threads = [
            threading.Thread(target=lambda r=r: r.catch_up(batch_size=50))  # type: ignore[misc]
            for r in (container.runner, other.runner)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert len(applied) == len(set(applied)), "a batch was committed twice"
    assert len(profile_rows(container)) == 1000


def test_wait_for_without_background_thread_does_the_work(container: Container) -> None:
    a = container.accounts.register("ada@example.com", PASSWORD)
    assert container.runner.wait_for(a.position, ["profiles"], timeout=5)
    assert container.profiles.get(a.account_id) is not None


def test_background_runner_wakes_on_save(container: Container) -> None:
    container.runner.poll_interval = 5.0  # only the save notification can wake it quickly
    container.runner.start()
    try:
        a = container.accounts.register("ada@example.com", PASSWORD)
        started = time.monotonic()
        assert container.runner.wait_for(a.position, ["profiles"], timeout=4)
        assert time.monotonic() - started < 2.0
    finally:
        container.runner.stop()


def test_version_bump_triggers_rebuild(container: Container, tmp_path: Path) -> None:
    container.accounts.register("ada@example.com", PASSWORD)
    container.runner.catch_up()
    with container.read.transaction() as tx:
        tx.execute("UPDATE projection_tracking SET version = 0 WHERE name = 'profiles'")
        tx.execute("DELETE FROM account_profiles")
    container.runner.setup()  # sees the old version: drops, recreates, replays
    assert len(profile_rows(container)) == 1
    status = next(s for s in container.runner.status() if s.name == "profiles")
    assert status.stored_version == status.version


def _worker(database_url: str, data_dir: Path, delay: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "BACKLINE_PROJECTION_BATCH_SIZE": "400",
        "BACKLINE_PROJECTION_COMMIT_DELAY": delay,
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "backline.infra.cli", "projections", "run"],
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_killed_worker_resumes_to_the_same_state_as_a_rebuild(
    container: Container, tmp_path: Path
) -> None:
    """SIGKILL the real `backline projections run` process mid-batch, several times."""
    seed_accounts(container, 4000)
    head = container.store.max_position()
    kills = 0
    for round_ in range(4):
        proc = _worker(container.settings.database_url, tmp_path / f"w{round_}", "0.3")
        start = container.runner.position("profiles")
        deadline = time.monotonic() + 30
        # Let it commit at least one batch, then kill it while it sits inside the next
        # transaction (the commit delay keeps it there most of the time).
        while container.runner.position("profiles") == start and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.15)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if container.runner.position("profiles") >= head:
            break
    assert kills >= 1
    assert container.runner.position("profiles") < head, "worker finished before any kill"
    # Restart the worker to completion.
    proc = _worker(container.settings.database_url, tmp_path / "final", "0")
    deadline = time.monotonic() + 60
    while container.runner.position("profiles") < head and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    assert container.runner.position("profiles") == head
    resumed = profile_rows(container)
    container.runner.rebuild("profiles")
    assert profile_rows(container) == resumed
    assert len(resumed) == 4000
