"""The delivery worker killed mid-job resumes it without delivering anything twice.

The worker runs as a real process (``python -m backline.infra.release_worker``) on the
same database and data directory as the test. Two ways to die:

* fault injection right after a store accepted the delivery and before the job recorded
  it (the moment a naive worker would deliver again on restart);
* SIGKILL while a delivery is in flight.

A restarted worker (a new process: a new worker id, so it first waits out the dead
one's lease) finishes the job; the store simulator's log shows one delivery per
(job, store) and the job's events one ``StoreDelivered`` per store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from backline.domain.delivery import ProcessingJob
from backline.infra.container import Container
from tests.conftest import ROOT
from tests.releases_helpers import FAST, Artist, build


def worker_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ}
    env.update(
        {
            "BACKLINE_DATA_DIR": str(data_dir),
            "BACKLINE_DATABASE_URL": database_url,
            "BACKLINE_SECRET_KEY": "test-secret-key-" + "x" * 32,
            "BACKLINE_PROJECTIONS_IN_PROCESS": "1",
            "BACKLINE_LOG_FORMAT": "json",
            **FAST,
            "BACKLINE_DELIVERY_LEASE": "2",
            **extra,
        }
    )
    return env


def start_worker(env: dict[str, str], log: Path, *, cli: bool = False) -> subprocess.Popen[bytes]:
    cmd = ["backline.infra.cli", "releases", "worker"] if cli else ["backline.infra.release_worker"]
    return subprocess.Popen(
        [sys.executable, "-m", *cmd],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )


def job_events(c: Container, job_id: UUID) -> list[object]:
    return list(c.store.events.get(job_id))


def wait_for(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-4000:]}")


def assert_delivered_once(c: Container, job_id: UUID) -> None:
    job = c.store.get(job_id, ProcessingJob)
    assert job.status == "live", job.stores
    counts = Counter(d["key"] for d in c.delivery.simulator.deliveries())
    assert counts == {f"{job_id}:{s}": 1 for s in ("spotify", "apple_music", "amazon_music")}
    delivered = Counter(
        e.store for e in job_events(c, job_id) if isinstance(e, ProcessingJob.StoreDelivered)
    )
    assert delivered == {"spotify": 1, "apple_music": 1, "amazon_music": 1}


@pytest.mark.slow
def test_crash_after_the_store_accepted_does_not_deliver_twice(
    database_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    c = build(database_url, data)
    log = tmp_path / "worker.log"
    try:
        a = Artist(c, "ada@example.com")
        r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
        proc = start_worker(
            worker_env(database_url, data, BACKLINE_DELIVERY_CRASH_AFTER_DELIVER="1"), log
        )
        assert proc.wait(timeout=60) == 137  # died right after the first store accepted
        accepted = c.delivery.simulator.deliveries()
        assert len(accepted) == 1
        started = [
            e for e in job_events(c, r.job_id) if isinstance(e, ProcessingJob.DeliveryStarted)
        ]
        assert [e.store for e in started] == [accepted[0]["store"]]
        assert not any(isinstance(e, ProcessingJob.StoreDelivered) for e in job_events(c, r.job_id))

        proc = start_worker(worker_env(database_url, data), log)
        try:
            wait_for(
                lambda: c.store.get(r.job_id, ProcessingJob).status == "live",
                40,
                "the resumed job to go live",
                log,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        assert_delivered_once(c, r.job_id)
        assert '"duplicate": true' in log.read_text()
    finally:
        c.close()


@pytest.mark.slow
def test_sigkill_mid_delivery_resumes(database_url: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    c = build(database_url, data)
    log = tmp_path / "worker.log"
    try:
        a = Artist(c, "ada@example.com")
        r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
        slow = worker_env(database_url, data, BACKLINE_STORE_LATENCY="4")  # 1 s per transfer
        proc = start_worker(slow, log)
        wait_for(
            lambda: any(
                isinstance(e, ProcessingJob.DeliveryStarted) for e in job_events(c, r.job_id)
            ),
            30,
            "a delivery to start",
            log,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert c.store.get(r.job_id, ProcessingJob).status == "delivering"

        proc = start_worker(
            worker_env(database_url, data), log, cli=True
        )  # `backline releases worker`
        try:
            wait_for(
                lambda: c.store.get(r.job_id, ProcessingJob).status == "live",
                40,
                "the resumed job to go live",
                log,
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
        assert_delivered_once(c, r.job_id)
        shown = subprocess.run(
            [sys.executable, "-m", "backline.infra.cli", "releases", "job", str(r.job_id)],
            env=worker_env(database_url, data),
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        assert f"{r.job_id} release_delivery live" in shown
        assert "spotify: live attempts=1" in shown
    finally:
        c.close()
