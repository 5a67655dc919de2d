"""Spawned worker processes leave when the process that spawned them is killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import ROOT

SCRIPT = """
import os, signal, sys
from backline.adapters import workers
workers.call(os.getpid)  # start the pool: a worker process now exists
print(",".join(str(p) for p in workers.pids()), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no atexit, no pool shutdown
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_workers_exit_after_their_parent_is_killed() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
        check=False,
    )
    assert proc.returncode == -9, proc.stderr
    pids = [int(p) for p in proc.stdout.strip().split(",") if p]
    assert pids
    deadline = time.monotonic() + 10
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(p) for p in pids), "orphaned worker processes"
