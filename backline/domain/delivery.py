"""The ProcessingJob aggregate: one delivery of a release to its stores.

Kinds: ``release_delivery`` (first submission), ``release_update`` (metadata update of a
live release) and ``release_takedown``. Each store moves
``queued → delivering → delivered → live`` (``taken_down`` instead of ``live`` for a
takedown), or, after ``max_attempts`` failed attempts retried with exponential backoff,
``failed`` with the store's reason. The job's own status follows its stores:

* ``queued`` while no store started, ``delivering`` while any store is on its way,
  ``delivered`` when every store accepted the message but not all are live yet;
* ``live`` / ``taken_down`` when every store is; ``failed`` when every store ended and
  at least one failed (the ``error`` names them).

Workers take a *lease* (``Claimed``) before working on a job; the store's optimistic
concurrency lets exactly one worker hold it, and an expired lease (a worker killed
mid-job) lets another take over. Delivery is idempotent per ``(job, store)``: the
delivery key is fixed (:meth:`ProcessingJob.delivery_key`), so a worker that resumes a
delivery it may already have made asks the store for the same key again and the store
does not deliver twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, NotFound

RELEASE_DELIVERY = "release_delivery"
RELEASE_UPDATE = "release_update"
RELEASE_TAKEDOWN = "release_takedown"
JOB_KINDS = (RELEASE_DELIVERY, RELEASE_UPDATE, RELEASE_TAKEDOWN)

QUEUED = "queued"
DELIVERING = "delivering"
DELIVERED = "delivered"
LIVE = "live"
TAKEN_DOWN = "taken_down"
FAILED = "failed"
FINAL_STORE_STATES = (LIVE, TAKEN_DOWN, FAILED)
ACTIVE_JOB_STATES = (QUEUED, DELIVERING, DELIVERED)


class LeaseHeld(Conflict):
    code = "job_lease_held"


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1`` after ``attempt`` failures: base·2^(n-1), capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def job_status(stores: dict[str, dict[str, Any]], kind: str) -> str:
    states = [s["status"] for s in stores.values()]
    if not states:
        return FAILED
    done = LIVE if kind != RELEASE_TAKEDOWN else TAKEN_DOWN
    if all(s in FINAL_STORE_STATES for s in states):
        return FAILED if FAILED in states else done
    if all(s == QUEUED for s in states):
        return QUEUED
    if all(s in (DELIVERED, LIVE, TAKEN_DOWN) for s in states):
        return DELIVERED
    return DELIVERING


class ProcessingJob(Aggregate):
    TOPIC = "backline.ProcessingJob"

    class Created(Aggregate.Created):
        TOPIC = "backline.ProcessingJob.Created"

    class Event(Aggregate.Event):
        pass

    class Queued(Created):
        TOPIC = "backline.ProcessingJob.Queued"
        kind: str
        release_id: UUID
        owner_id: UUID
        release_version: int
        stores: list[str]
        max_attempts: int

    @event(Queued)
    def __init__(
        self,
        kind: str,
        release_id: UUID,
        owner_id: UUID,
        release_version: int,
        stores: list[str],
        max_attempts: int,
    ) -> None:
        if kind not in JOB_KINDS:
            raise ValueError(f"unknown job kind {kind!r}")
        self.kind = kind
        self.release_id = release_id
        self.owner_id = owner_id
        self.release_version = release_version
        self.max_attempts = max_attempts
        self.stores: dict[str, dict[str, Any]] = {
            s: {
                "status": QUEUED,
                "attempts": 0,
                "error": None,
                "retry_at": None,
                "receipt": None,
                "message_id": None,
                "updated_at": None,
            }
            for s in stores
        }
        self.status = QUEUED
        self.error: str | None = None
        self.worker: str | None = None
        self.lease_until: datetime | None = None
        self.refunded = 0

    def ensure_owner(self, account_id: UUID) -> None:
        if self.owner_id != account_id:
            raise NotFound("Job not found.", code="job_not_found")

    @staticmethod
    def delivery_key(job_id: UUID, store: str) -> str:
        return f"{job_id}:{store}"

    @property
    def finished(self) -> bool:
        return self.status not in ACTIVE_JOB_STATES

    def _refresh(self) -> None:
        self.status = job_status(self.stores, self.kind)
        failed = [f"{s}: {v['error']}" for s, v in self.stores.items() if v["status"] == FAILED]
        self.error = "; ".join(failed) if failed else None

    # -- lease -----------------------------------------------------------------------------

    class Claimed(Event):
        TOPIC = "backline.ProcessingJob.Claimed"
        worker: str
        lease_until: datetime

    @event(Claimed)
    def _claimed(self, worker: str, lease_until: datetime) -> None:
        self.worker = worker
        self.lease_until = lease_until

    def claim(self, worker: str, now: datetime, lease: timedelta) -> None:
        if self.finished:
            raise Conflict("The job has finished.", code="job_finished")
        if (
            self.worker is not None
            and self.worker != worker
            and self.lease_until is not None
            and now < self.lease_until
        ):
            raise LeaseHeld("Another worker holds this job.", worker=self.worker)
        self._claimed(worker=worker, lease_until=now + lease)

    def holds_lease(self, worker: str, now: datetime) -> bool:
        return self.worker == worker and self.lease_until is not None and now < self.lease_until

    # -- what is due -------------------------------------------------------------------------

    def due(self, now: datetime) -> list[str]:
        """Stores a worker should act on now (start/resume delivery, or check liveness)."""
        out = []
        for store, s in self.stores.items():
            if s["status"] in FINAL_STORE_STATES:
                continue
            retry_at = s["retry_at"]
            if retry_at is None or retry_at <= now:
                out.append(store)
        return out

    def next_due_at(self) -> datetime | None:
        times = [
            s["retry_at"]
            for s in self.stores.values()
            if s["status"] not in FINAL_STORE_STATES and s["retry_at"] is not None
        ]
        return min(times) if times else None

    # -- per-store steps ---------------------------------------------------------------------

    class DeliveryStarted(Event):
        TOPIC = "backline.ProcessingJob.DeliveryStarted"
        store: str
        attempt: int
        message_id: str
        at: datetime

    @event(DeliveryStarted)
    def _delivery_started(self, store: str, attempt: int, message_id: str, at: datetime) -> None:
        s = self.stores[store]
        s["status"] = DELIVERING
        s["attempts"] = attempt
        s["message_id"] = message_id
        s["retry_at"] = None
        s["updated_at"] = at
        self._refresh()

    def start_delivery(self, store: str, message_id: str, now: datetime) -> int:
        """Record an attempt about to be made; returns its number (1-based)."""
        s = self.stores[store]
        if s["status"] != QUEUED:
            raise Conflict(f"{store} is {s['status']}, not queued.", code="invalid_job_state")
        attempt = int(s["attempts"]) + 1
        self._delivery_started(store=store, attempt=attempt, message_id=message_id, at=now)
        return attempt

    class StoreDelivered(Event):
        TOPIC = "backline.ProcessingJob.StoreDelivered"
        store: str
        receipt: str
        at: datetime
        check_at: datetime

    @event(StoreDelivered)
    def _store_delivered(self, store: str, receipt: str, at: datetime, check_at: datetime) -> None:
        s = self.stores[store]
        s["status"] = DELIVERED
        s["receipt"] = receipt
        s["error"] = None
        s["retry_at"] = check_at
        s["updated_at"] = at
        self._refresh()

    def mark_delivered(self, store: str, receipt: str, now: datetime, check_at: datetime) -> None:
        if self.stores[store]["status"] != DELIVERING:
            raise Conflict(f"{store} is not being delivered.", code="invalid_job_state")
        self._store_delivered(store=store, receipt=receipt, at=now, check_at=check_at)

    class StoreWentLive(Event):
        TOPIC = "backline.ProcessingJob.StoreWentLive"
        store: str
        status: str
        at: datetime

    @event(StoreWentLive)
    def _store_went_live(self, store: str, status: str, at: datetime) -> None:
        s = self.stores[store]
        s["status"] = status
        s["retry_at"] = None
        s["updated_at"] = at
        self._refresh()

    def mark_live(self, store: str, now: datetime) -> None:
        if self.stores[store]["status"] != DELIVERED:
            raise Conflict(f"{store} is not delivered.", code="invalid_job_state")
        self._store_went_live(
            store=store, status=TAKEN_DOWN if self.kind == RELEASE_TAKEDOWN else LIVE, at=now
        )

    class StoreCheckDeferred(Event):
        TOPIC = "backline.ProcessingJob.StoreCheckDeferred"
        store: str
        check_at: datetime

    @event(StoreCheckDeferred)
    def _check_deferred(self, store: str, check_at: datetime) -> None:
        self.stores[store]["retry_at"] = check_at

    def defer_check(self, store: str, check_at: datetime) -> None:
        self._check_deferred(store=store, check_at=check_at)

    class AttemptFailed(Event):
        TOPIC = "backline.ProcessingJob.AttemptFailed"
        store: str
        attempt: int
        reason: str
        retry_at: datetime | None
        at: datetime

    @event(AttemptFailed)
    def _attempt_failed(
        self, store: str, attempt: int, reason: str, retry_at: datetime | None, at: datetime
    ) -> None:
        s = self.stores[store]
        s["error"] = reason
        s["updated_at"] = at
        if retry_at is None:
            s["status"] = FAILED
            s["retry_at"] = None
        else:
            s["status"] = QUEUED
            s["retry_at"] = retry_at
        self._refresh()

    def fail_attempt(
        self,
        store: str,
        reason: str,
        now: datetime,
        *,
        backoff_base: float,
        backoff_cap: float,
        retryable: bool = True,
    ) -> bool:
        """Record a failed attempt; True when the store gave up (``failed``)."""
        s = self.stores[store]
        if s["status"] not in (DELIVERING, DELIVERED):
            raise Conflict(f"{store} has no attempt in flight.", code="invalid_job_state")
        attempt = int(s["attempts"])
        give_up = not retryable or attempt >= self.max_attempts
        retry_at = (
            None
            if give_up
            else now + timedelta(seconds=backoff_seconds(attempt, backoff_base, backoff_cap))
        )
        self._attempt_failed(
            store=store, attempt=attempt, reason=reason[:500], retry_at=retry_at, at=now
        )
        return give_up

    class Refunded(Event):
        TOPIC = "backline.ProcessingJob.Refunded"
        credits: int
        ref: str

    @event(Refunded)
    def _refunded(self, credits: int, ref: str) -> None:
        self.refunded = credits

    def record_refund(self, credits: int, ref: str) -> None:
        if self.status != FAILED or self.refunded:
            raise Conflict("Only a failed job is refunded, once.", code="invalid_job_state")
        self._refunded(credits=credits, ref=ref)

    def any_store(self, status: str) -> bool:
        return any(s["status"] == status for s in self.stores.values())
