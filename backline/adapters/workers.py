"""A process-wide pool of spawned worker processes for heavy or hostile-input work.

Decoding uploads (libsndfile, libmpg123, libjpeg, libpng …) and rendering 3000x3000 cover
art run here, not in the API process: a native crash costs one worker (the pool is
rebuilt), a stuck job is killed at its timeout, and numpy, the codecs and the transient
image buffers (~200 MB for one 3000x3000 render) never inflate the server's memory.
Workers are recycled every ``MAX_TASKS_PER_WORKER`` jobs.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

MAX_TASKS_PER_WORKER = 200
_POOL: Any = None
_LOCK = threading.Lock()


class WorkerCrashed(Exception):
    """The worker process died while running the job."""


class WorkerTimeout(Exception):
    """The job ran past its timeout; its worker was killed."""


def _exit_with_parent() -> None:
    """Worker initializer: leave when the server that spawned us is gone.

    A server killed with SIGKILL cannot shut its pool down; without this its workers
    would live on as orphans.
    """
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _pool(size: int) -> Any:
    global _POOL
    with _LOCK:
        if _POOL is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            _POOL = ProcessPoolExecutor(
                max_workers=size,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=MAX_TASKS_PER_WORKER,
                initializer=_exit_with_parent,
            )
            atexit.register(shutdown)
        return _POOL


def _reset(broken: Any) -> None:
    """Drop a broken or stuck pool: kill its workers, then reap them."""
    global _POOL
    with _LOCK:
        if _POOL is broken:
            _POOL = None
    for process in list(getattr(broken, "_processes", {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    broken.shutdown(wait=True, cancel_futures=True)


def shutdown() -> None:
    pool = _POOL
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def pids() -> list[int]:
    """Process ids of the live workers (for tests and benchmarks)."""
    pool = _POOL
    if pool is None:
        return []
    return [p.pid for p in getattr(pool, "_processes", {}).values() if p.pid]


def call(fn: Callable[..., T], *args: Any, size: int = 2, timeout: float = 900.0) -> T:
    """Run a module-level function in a worker; its exceptions propagate (pickled)."""
    from concurrent.futures import TimeoutError as FutureTimeout
    from concurrent.futures.process import BrokenProcessPool

    pool = _pool(size)
    try:
        result: T = pool.submit(fn, *args).result(timeout=timeout)
    except BrokenProcessPool:
        _reset(pool)
        raise WorkerCrashed(getattr(fn, "__name__", "job")) from None
    except FutureTimeout:
        _reset(pool)
        raise WorkerTimeout(getattr(fn, "__name__", "job")) from None
    return result
