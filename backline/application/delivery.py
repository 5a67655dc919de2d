"""Delivery of releases to stores: the port, and the worker that runs ProcessingJobs.

The worker finds due jobs through a :class:`JobSource` (the release status projection),
takes a lease on each (an event on the job: one worker at a time; an expired lease —
a worker killed mid-job — lets another take over), builds the DDEX ERN 4.3 message from
the release version the job names, checks it (required elements; the official XSD when
configured) and hands it to the :class:`DeliveryPort` under the fixed key
``<job id>:<store>``. The port is idempotent per key, so resuming a delivery that may
already have happened never delivers twice. Before the call the job records
``DeliveryStarted``; after it ``StoreDelivered`` (or ``AttemptFailed`` with the reason,
retried with exponential backoff up to ``max_attempts``); then the worker polls the
store until the release is ``live``.

Credits policy when stores keep failing: a first delivery (``release_delivery``) that
ends ``failed`` at *every* store refunds the release's credits (tracks and token
offset, refs ``refund:release:<id>`` / ``refund:token_offset:<id>``) in the same
transaction that records the refund on the job. When at least one store took the
release nothing is refunded: the failed stores keep their reason, and a metadata update
delivers again.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from backline.application.credits import CreditService
from backline.application.ern import (
    ErnInvalid,
    MessageContext,
    Party,
    build_new_release_message,
    check_required,
    resource_uri,
    validate_xsd,
)
from backline.application.ports import Clock, SystemClock
from backline.application.store import EventStore
from backline.application.worker import PollingWorker
from backline.domain.delivery import (
    DELIVERED,
    DELIVERING,
    FAILED,
    LIVE,
    QUEUED,
    RELEASE_DELIVERY,
    RELEASE_TAKEDOWN,
    RELEASE_UPDATE,
    TAKEN_DOWN,
    LeaseHeld,
    ProcessingJob,
)
from backline.domain.errors import Conflict
from backline.domain.releases import Release

log = structlog.get_logger(__name__)


# -- the port ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryResource:
    """A file the message references (``uri`` inside the batch) and how to read it."""

    uri: str
    sha256: str
    size: int
    open: Callable[[], BinaryIO]


@dataclass(frozen=True)
class DeliveryReceipt:
    key: str
    receipt_id: str
    accepted_at: datetime
    duplicate: bool  # the store had this key already: nothing was delivered again


@dataclass(frozen=True)
class StoreStatus:
    state: str  # processing | live | rejected
    reason: str | None = None


class DeliveryRejected(Exception):
    def __init__(self, reason: str, *, retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


class DeliveryPort(Protocol):
    provider: str

    def party(self, store: str) -> Party:
        """The store's DDEX party (DPID and name) for the MessageRecipient."""
        ...

    def deliver(
        self, key: str, store: str, message: bytes, resources: Sequence[DeliveryResource]
    ) -> DeliveryReceipt:
        """Deliver once per ``key`` (a repeated key returns the first receipt).

        Raises :class:`DeliveryRejected` when the store refuses or is unreachable.
        """
        ...

    def status(self, key: str, store: str) -> StoreStatus: ...


class JobSource(Protocol):
    def due_jobs(self, now: datetime, limit: int) -> list[UUID]: ...


class FileOpener(Protocol):
    def open(self, owner_id: UUID, url: str) -> BinaryIO: ...


@dataclass(frozen=True)
class DeliveryPolicy:
    sender: Party = field(default_factory=lambda: Party("PADPIDA00BACKLINE0", "Backline"))
    lease_seconds: float = 60.0
    backoff_base: float = 2.0
    backoff_cap: float = 300.0
    check_interval: float = 0.5
    poll_interval: float = 0.5
    concurrency: int = 4
    xsd_dir: Path | None = None
    refund_failed: bool = True


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DeliveryWorker(PollingWorker):
    name = "delivery"

    def __init__(
        self,
        store: EventStore,
        jobs: JobSource,
        port: DeliveryPort,
        files: FileOpener,
        credits: CreditService,
        policy: DeliveryPolicy | None = None,
        clock: Clock | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.port = port
        self.files = files
        self.credits = credits
        self.policy = policy or DeliveryPolicy()
        self.clock = clock or SystemClock()
        self.worker_id = worker_id or default_worker_id()
        # Woken by this process's saves (a new job starts at once); jobs retried with
        # backoff, and other processes' jobs, are found by polling.
        super().__init__(store, poll_interval=self.policy.poll_interval)
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, self.policy.concurrency), thread_name_prefix="delivery"
        )
        self._busy: set[UUID] = set()
        self._busy_lock = threading.Lock()
        self._job_locks: dict[UUID, threading.Lock] = {}
        self._deferred: dict[tuple[UUID, str], float] = {}
        # Fault injection (tests): called after a store accepted, before it is recorded.
        self.after_deliver: Callable[[str], None] | None = None

    # -- loop ------------------------------------------------------------------------------

    def step(self) -> int:
        # Jobs stay "due" while a store is deferred or retried with backoff, so after a
        # round the loop always sleeps (or is woken) instead of spinning on them.
        self.run_once()
        return 0

    def run_once(self) -> int:
        """Work every due job once (in parallel across jobs); return how many ran."""
        now = self.clock.now()
        due = self.jobs.due_jobs(now, limit=100)
        futures = []
        for job_id in due:
            with self._busy_lock:
                if job_id in self._busy:
                    continue
                self._busy.add(job_id)
            futures.append(self._pool.submit(self._process_guarded, job_id))
        for f in futures:
            f.result()
        return len(futures)

    def _process_guarded(self, job_id: UUID) -> None:
        try:
            self.process(job_id)
        except Exception:
            log.exception("delivery_job_failed_unexpectedly", job_id=str(job_id))
        finally:
            with self._busy_lock:
                self._busy.discard(job_id)

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one job ---------------------------------------------------------------------------

    def _lease(self) -> timedelta:
        return timedelta(seconds=self.policy.lease_seconds)

    def _load(self, job_id: UUID) -> ProcessingJob:
        return self.store.get(job_id, ProcessingJob, what="job")

    def _mutate(
        self, job_id: UUID, change: Callable[[ProcessingJob, datetime], bool]
    ) -> bool | None:
        """Reload, hold the lease, apply ``change`` and save.

        Returns ``None`` when another worker holds the lease (nothing done), else what
        ``change`` returned (``False``: the job had moved on, nothing of ours applied).
        """
        lock = self._job_locks.setdefault(job_id, threading.Lock())
        with lock:
            for _ in range(5):
                job = self._load(job_id)
                now = self.clock.now()
                if job.finished:
                    return False
                if not job.holds_lease(self.worker_id, now):
                    try:
                        job.claim(self.worker_id, now, self._lease())
                    except (LeaseHeld, Conflict):
                        return None
                elif job.lease_until is not None and job.lease_until - now < self._lease() / 2:
                    job.claim(self.worker_id, now, self._lease())
                applied = change(job, now)
                if not job.pending_events:
                    return applied
                try:
                    self.store.save_all(job)
                    return applied
                except IntegrityError:
                    continue
        return None

    def process(self, job_id: UUID) -> None:
        job = self._load(job_id)
        if job.finished:
            self._maybe_refund(job_id)
            self._forget(job)
            return
        now = self.clock.now()
        if self._mutate(job_id, lambda j, n: False) is None:  # take or renew the lease
            return
        job = self._load(job_id)
        clock = time.monotonic()
        due = [s for s in job.due(now) if self._deferred.get((job_id, s), 0.0) <= clock]
        if due:
            message_for: dict[str, bytes] = {}
            loaded: list[Release] = []

            def release() -> Release:
                """The release version the job delivers (loaded once, only if needed)."""
                if not loaded:
                    version = job.release_version
                    found: Any = self.store.repository.get(job.release_id, version=version)
                    assert isinstance(found, Release)
                    loaded.append(found)
                return loaded[0]

            for store_name in due:
                self._step(job, release, store_name, message_for)
        self._maybe_refund(job_id)
        job = self._load(job_id)
        if job.finished:
            self._forget(job)

    def _forget(self, job: ProcessingJob) -> None:
        self._job_locks.pop(job.id, None)
        for store_name in job.stores:
            self._deferred.pop((job.id, store_name), None)

    def _message(self, job: ProcessingJob, release: Release, store_name: str) -> bytes:
        assert release.metadata is not None
        ctx = MessageContext(
            message_id=ProcessingJob.delivery_key(job.id, store_name),
            thread_id=str(job.id),
            created=job.created_on,
            sender=self.policy.sender,
            recipient=self.port.party(store_name),
            takedown=job.kind == RELEASE_TAKEDOWN,
            update=job.kind == RELEASE_UPDATE,
        )
        message = build_new_release_message(ctx, release.metadata, release.tracks)
        check_required(message)
        if self.policy.xsd_dir is not None:
            validate_xsd(message, self.policy.xsd_dir)
        return message

    def _resources(self, release: Release) -> list[DeliveryResource]:
        assert release.metadata is not None
        out: list[DeliveryResource] = []
        views = [t.get("audio") or {} for t in release.tracks]
        views.append(release.metadata.get("cover") or {})
        owner = release.owner_id
        for view in views:
            url = str(view.get("url") or "")
            out.append(
                DeliveryResource(
                    uri=resource_uri(view),
                    sha256=str(view.get("sha256") or ""),
                    size=int(view.get("size") or 0),
                    open=lambda u=url: self.files.open(owner, u),  # type: ignore[misc]
                )
            )
        return out

    def _step(
        self,
        job: ProcessingJob,
        release_of: Callable[[], Release],
        store_name: str,
        messages: dict[str, bytes],
    ) -> None:
        state = job.stores[store_name]["status"]
        key = ProcessingJob.delivery_key(job.id, store_name)
        policy = self.policy
        if state in (QUEUED, DELIVERING):
            release = release_of()
            try:
                message = messages.get(store_name) or self._message(job, release, store_name)
            except ErnInvalid as e:
                self._fail(job.id, store_name, f"ERN invalid: {e}", retryable=False, start=True)
                return
            messages[store_name] = message
            if state == QUEUED:
                started = self._mutate(
                    job.id,
                    lambda j, now: (
                        j.stores[store_name]["status"] == QUEUED
                        and j.start_delivery(store_name, key, now) > 0
                    ),
                )
                if not started:
                    return
            try:
                receipt = self.port.deliver(key, store_name, message, self._resources(release))
            except DeliveryRejected as e:
                self._fail(job.id, store_name, e.reason, retryable=e.retryable)
                return
            if self.after_deliver is not None:
                self.after_deliver(key)
            log.info(
                "release_delivered",
                job_id=str(job.id),
                store=store_name,
                receipt=receipt.receipt_id,
                duplicate=receipt.duplicate,
            )
            self._mutate(
                job.id,
                lambda j, now: (
                    j.stores[store_name]["status"] == DELIVERING
                    and _mark_delivered(
                        j, store_name, receipt.receipt_id, now, policy.check_interval
                    )
                ),
            )
            return
        if state == DELIVERED:
            status = self.port.status(key, store_name)
            if status.state == "live":
                self._mutate(
                    job.id,
                    lambda j, now: (
                        j.stores[store_name]["status"] == DELIVERED
                        and _mark_live(j, store_name, now)
                    ),
                )
            elif status.state == "rejected":
                self._fail(job.id, store_name, status.reason or "rejected", retryable=False)
            else:
                # Not live yet: look again later (in memory; polling needs no events).
                self._deferred[(job.id, store_name)] = time.monotonic() + policy.check_interval

    def _fail(
        self, job_id: UUID, store_name: str, reason: str, *, retryable: bool, start: bool = False
    ) -> None:
        policy = self.policy

        def change(j: ProcessingJob, now: datetime) -> bool:
            s = j.stores[store_name]["status"]
            if start and s == QUEUED:
                j.start_delivery(store_name, ProcessingJob.delivery_key(j.id, store_name), now)
            elif s not in (DELIVERING, DELIVERED):
                return False
            gave_up = j.fail_attempt(
                store_name,
                reason,
                now,
                backoff_base=policy.backoff_base,
                backoff_cap=policy.backoff_cap,
                retryable=retryable,
            )
            log.warning(
                "release_delivery_attempt_failed",
                job_id=str(j.id),
                store=store_name,
                reason=reason,
                gave_up=gave_up,
            )
            return True

        self._mutate(job_id, change)

    def _maybe_refund(self, job_id: UUID) -> None:
        """A first delivery that reached no store gives the release's credits back."""
        if not self.policy.refund_failed:
            return
        job = self._load(job_id)
        if (
            job.kind != RELEASE_DELIVERY
            or job.status != FAILED
            or job.refunded
            or any(s["status"] != FAILED for s in job.stores.values())
        ):
            return
        account_id = job.owner_id

        def attempt() -> int:
            j = self._load(job_id)
            if j.refunded:
                return 0
            ledger = self.credits.load_ledger(account_id)
            total = 0
            for ref in (f"release:{j.release_id}", f"token_offset:{j.release_id}"):
                debit = ledger.debits.get(ref)
                if debit is None:
                    continue
                amount = debit[0] - debit[1]
                if amount > 0 and ledger.refund(
                    amount,
                    f"refund:{ref}",
                    of_ref=ref,
                    details={"job_id": str(j.id), "reason": "delivery_failed"},
                ):
                    total += amount
            if total == 0:
                return 0
            j.record_refund(total, f"refund:release:{j.release_id}")
            return self.store.save_all(j, ledger)

        position = self.credits.retry(account_id, attempt)
        if position:
            log.info("release_refunded", job_id=str(job_id), release_id=str(job.release_id))


def _mark_delivered(
    job: ProcessingJob, store: str, receipt: str, now: datetime, check_interval: float
) -> bool:
    job.mark_delivered(store, receipt, now, now + timedelta(seconds=check_interval))
    return True


def _mark_live(job: ProcessingJob, store: str, now: datetime) -> bool:
    job.mark_live(store, now)
    return True


__all__ = [
    "DELIVERED",
    "DELIVERING",
    "LIVE",
    "TAKEN_DOWN",
    "DeliveryPolicy",
    "DeliveryPort",
    "DeliveryReceipt",
    "DeliveryRejected",
    "DeliveryResource",
    "DeliveryWorker",
    "StoreStatus",
]
