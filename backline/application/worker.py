"""A background loop that follows the event log: projection runners, process managers.

Subclasses implement :meth:`step` (do one unit of work, return how much was done).
The loop runs steps back to back while there is work, sleeps ``poll_interval`` when
there is none, and wakes at once when this process saves events (the event store's
listener) — other processes' writes are seen at the next poll.
"""

from __future__ import annotations

import threading

import structlog

from backline.application.store import EventStore

log = structlog.get_logger(__name__)


class PollingWorker:
    name = "worker"

    def __init__(self, store: EventStore, *, poll_interval: float) -> None:
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        store.add_listener(lambda _pos: self._wake.set())

    def step(self) -> int:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake.set()

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop_event = stop or self._stop
        while not stop_event.is_set():
            try:
                progressed = self.step()
            except Exception:
                # Stop-the-line for this worker (the position does not move), retried
                # after a pause; status and lag show it.
                log.exception("worker_step_failed", worker=self.name)
                progressed = 0
                stop_event.wait(1.0)
            if not progressed:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
