"""ProcessingJob: store statuses, job status, leases, retries with backoff, failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from backline.domain.delivery import (
    RELEASE_DELIVERY,
    RELEASE_TAKEDOWN,
    LeaseHeld,
    ProcessingJob,
    backoff_seconds,
)
from backline.domain.errors import Conflict, NotFound

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def job(kind: str = RELEASE_DELIVERY, stores: tuple[str, ...] = ("a", "b"), attempts: int = 3):
    return ProcessingJob(
        kind=kind,
        release_id=uuid4(),
        owner_id=uuid4(),
        release_version=3,
        stores=list(stores),
        max_attempts=attempts,
    )


def test_happy_path_queued_delivering_delivered_live() -> None:
    j = job()
    assert j.status == "queued"
    assert j.due(T0) == ["a", "b"]
    j.claim("w1", T0, LEASE)
    assert j.start_delivery("a", "k", T0) == 1
    assert j.status == "delivering"
    j.mark_delivered("a", "r1", T0, T0 + timedelta(seconds=1))
    assert j.due(T0) == ["b"]  # a waits for its liveness check
    assert j.due(T0 + timedelta(seconds=1)) == ["a", "b"]
    j.start_delivery("b", "k", T0)
    j.mark_delivered("b", "r2", T0, T0)
    assert j.status == "delivered"
    j.mark_live("a", T0)
    assert j.status == "delivered"
    j.mark_live("b", T0)
    assert j.status == "live"
    assert j.finished
    with pytest.raises(Conflict):
        j.claim("w1", T0, LEASE)
    # Replay gives the same state.
    copy = None
    for e in j.collect_events():
        copy = e.mutate(copy)
    assert isinstance(copy, ProcessingJob)
    assert copy.status == "live"
    assert copy.stores["a"]["receipt"] == "r1"


def test_retry_with_backoff_then_failed_with_reason() -> None:
    j = job(stores=("a",), attempts=3)
    j.claim("w1", T0, LEASE)
    now = T0
    for attempt in (1, 2, 3):
        assert j.start_delivery("a", "k", now) == attempt
        gave_up = j.fail_attempt("a", "503", now, backoff_base=2, backoff_cap=60)
        if attempt < 3:
            assert not gave_up
            assert j.stores["a"]["status"] == "queued"
            assert j.stores["a"]["retry_at"] == now + timedelta(seconds=2 * 2 ** (attempt - 1))
            assert j.due(now) == []
            now = j.stores["a"]["retry_at"]
            assert j.due(now) == ["a"]
    assert gave_up
    assert j.status == "failed"
    assert j.error == "a: 503"
    j.record_refund(2, "refund:release:x")
    with pytest.raises(Conflict):
        j.record_refund(2, "refund:release:x")


def test_non_retryable_failure_gives_up_at_once_and_partial_failure_fails_the_job() -> None:
    j = job()
    j.claim("w", T0, LEASE)
    j.start_delivery("a", "k", T0)
    assert j.fail_attempt("a", "ERN invalid", T0, backoff_base=1, backoff_cap=1, retryable=False)
    j.start_delivery("b", "k", T0)
    j.mark_delivered("b", "r", T0, T0)
    assert j.status == "delivering"
    j.mark_live("b", T0)
    assert j.status == "failed"
    assert j.any_store("live")


def test_lease_excludes_other_workers_until_it_expires() -> None:
    j = job()
    j.claim("w1", T0, LEASE)
    assert j.holds_lease("w1", T0)
    with pytest.raises(LeaseHeld):
        j.claim("w2", T0 + timedelta(seconds=10), LEASE)
    j.claim("w2", T0 + timedelta(seconds=31), LEASE)  # w1 died: its lease ran out
    assert j.holds_lease("w2", T0 + timedelta(seconds=31))
    assert not j.holds_lease("w1", T0 + timedelta(seconds=31))


def test_takedown_ends_taken_down_and_guards() -> None:
    j = job(kind=RELEASE_TAKEDOWN, stores=("a",))
    j.start_delivery("a", "k", T0)
    with pytest.raises(Conflict):
        j.start_delivery("a", "k", T0)
    with pytest.raises(Conflict):
        j.mark_live("a", T0)
    j.mark_delivered("a", "r", T0, T0)
    j.mark_live("a", T0)
    assert j.status == "taken_down"
    with pytest.raises(NotFound):
        j.ensure_owner(uuid4())
    with pytest.raises(ValueError):
        ProcessingJob(
            kind="bogus",
            release_id=uuid4(),
            owner_id=uuid4(),
            release_version=1,
            stores=[],
            max_attempts=1,
        )


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(n, 2, 10) for n in (1, 2, 3, 4, 5)] == [2, 4, 8, 10, 10]
