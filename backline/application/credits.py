"""Credit use cases: debit, grant, purchase, refund, reverse — each idempotent by ``ref``.

Other use cases that must debit atomically with their own aggregate (submitting a
release) do::

    ledger = credits.load_ledger(account_id)
    ledger.debit(cost, f"release:{release.id}")
    store.save_all(release, ledger)          # one transaction, both or neither

inside their own retry loop (:func:`CreditService.retry` or ``store.retrying``).
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from backline.application.store import CommandConflict, EventStore
from backline.domain.billing import PaymentIndex, payment_index_id
from backline.domain.credits import CreditLedger, InsufficientCredits, ledger_id

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class LedgerResult:
    """``applied`` is False when the ref had been applied before (nothing written)."""

    applied: bool
    balance: int
    position: int
    ref: str


class CreditService:
    def __init__(
        self, store: EventStore, *, attempts: int = 60, stripes: int = 64, cache_size: int = 2048
    ) -> None:
        self.store = store
        self.attempts = attempts
        self.cache_size = cache_size
        self._cache: OrderedDict[UUID, CreditLedger] = OrderedDict()
        self._cache_lock = threading.Lock()
        # Writers in one process queue on a per-ledger lock instead of racing the store;
        # writers in other processes still meet optimistic concurrency and retry.
        # Re-entrant: a use case may call ``debit`` inside its own ``retry``.
        self._locks = [threading.RLock() for _ in range(stripes)]

    # -- loading ------------------------------------------------------------------------

    def load_ledger(self, account_id: UUID, *, trust_cache: bool = False) -> CreditLedger:
        """The account's ledger, or a new (unsaved) one; save it with ``store.save_all``.

        ``trust_cache``: see :meth:`_current` (a command's first attempt only; refuse for
        lack of credits only on a fresh load; :meth:`remember` the ledger once saved).
        """
        found = self._current(ledger_id(account_id), trust_cache=trust_cache)
        return found if found is not None else CreditLedger(account_id=account_id)

    def remember(self, ledger: CreditLedger) -> None:
        """Cache a ledger the caller has just saved, so the next command starts from it."""
        self._remember(ledger)

    def balance(self, account_id: UUID) -> int:
        found = self._current(ledger_id(account_id))
        return found.balance if found is not None else 0

    def ledger_by_id(self, lid: UUID) -> CreditLedger | None:
        """The stored ledger with this id (cached, fast-forwarded), or None."""
        return self._current(lid)

    def _current(self, lid: UUID, *, trust_cache: bool = False) -> CreditLedger | None:
        """The stored ledger, from a per-process cache fast-forwarded from the store.

        Replaying a long ledger on every command costs O(history); the cache keeps the
        last state seen and only reads the events recorded after it (by any process),
        so the result is always the committed state. Callers get a private copy.

        ``trust_cache`` skips the fast-forward read: for a command's first attempt only.
        Deciding on a stale state is safe there, because its save then collides with the
        newer event in the store (optimistic concurrency) and the retry reads fresh.
        """
        with self._cache_lock:
            cached = self._cache.get(lid)
        if cached is not None and trust_cache:
            return cached.clone()
        if cached is None:
            ledger = self.store.find(lid, CreditLedger)
            if ledger is None:
                return None
        else:
            ledger = cached.clone()
            newer = list(self.store.repository.event_store.get(lid, gt=ledger.version))
            if not newer:
                return ledger  # the cache is current
            for e in newer:
                ledger = cast(Any, e).mutate(ledger)
        with self._cache_lock:
            current = self._cache.get(lid)
            if current is None or current.version <= ledger.version:
                self._cache[lid] = ledger.clone()
                self._cache.move_to_end(lid)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return ledger

    def _remember(self, ledger: CreditLedger) -> None:
        """Cache a ledger this service has just saved (no pending events left)."""
        if ledger.pending_events:
            return
        with self._cache_lock:
            current = self._cache.get(ledger.id)
            if current is None or current.version < ledger.version:
                self._cache[ledger.id] = ledger.clone()
                self._cache.move_to_end(ledger.id)
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)

    # -- retry ------------------------------------------------------------------------------

    def retry(self, account_id: UUID, fn: Callable[[], T]) -> T:
        """Run a load-decide-save ``fn`` touching this account's ledger until it commits.

        Bounded: after ``attempts`` version races the caller gets a typed 409.
        """
        lock = self._locks[hash(ledger_id(account_id)) % len(self._locks)]
        for attempt in range(self.attempts):
            with lock:
                try:
                    return fn()
                except IntegrityError:
                    pass
            # Another process won the race: back off a little, with jitter.
            time.sleep(random.uniform(0, min(0.05, 0.001 * (2 ** min(attempt, 6)))))
        raise CommandConflict("The credit ledger was changed concurrently; please retry.")

    # -- commands ---------------------------------------------------------------------------

    def debit(
        self, account_id: UUID, credits: int, ref: str, *, details: dict[str, str] | None = None
    ) -> LedgerResult:
        lid = ledger_id(account_id)
        first = [True]

        def attempt() -> LedgerResult:
            # The first attempt decides on the cached ledger without reading the store
            # (a stale one makes the save collide and the retry reads fresh); a refusal
            # for lack of credits is only given on fresh state.
            trust, first[0] = first[0], False
            ledger = self._current(lid, trust_cache=trust) or CreditLedger(account_id=account_id)
            try:
                applied = ledger.debit(credits, ref, details=details)
            except InsufficientCredits:
                if not trust:
                    raise
                ledger = self._current(lid) or CreditLedger(account_id=account_id)
                applied = ledger.debit(credits, ref, details=details)
            if not applied and trust:
                # "Already applied" is final (a ref never leaves a ledger); report the
                # current balance, not the cached one.
                return LedgerResult(False, self.balance(account_id), 0, ref)
            position = self.store.save_all(ledger) if applied else 0
            self._remember(ledger)
            return LedgerResult(applied, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    def grant(
        self, account_id: UUID, credits: int, ref: str, *, details: dict[str, str] | None = None
    ) -> LedgerResult:
        def attempt() -> LedgerResult:
            ledger = self.load_ledger(account_id)
            applied = ledger.grant(credits, ref, details=details)
            position = self.store.save_all(ledger) if applied else 0
            return LedgerResult(applied, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    def refund(
        self,
        account_id: UUID,
        credits: int,
        ref: str,
        *,
        of_ref: str,
        details: dict[str, str] | None = None,
    ) -> LedgerResult:
        def attempt() -> LedgerResult:
            ledger = self.load_ledger(account_id)
            applied = ledger.refund(credits, ref, of_ref=of_ref, details=details)
            position = self.store.save_all(ledger) if applied else 0
            return LedgerResult(applied, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    def purchase(
        self,
        account_id: UUID,
        credits: int,
        ref: str,
        *,
        payment_ref: str,
        amount_paid: int,
        details: dict[str, str] | None = None,
    ) -> LedgerResult:
        """Credits bought with a card payment; the payment is indexed for refunds."""

        def attempt() -> LedgerResult:
            ledger = self.load_ledger(account_id)
            applied = ledger.purchase(
                credits, ref, payment_ref=payment_ref, amount_paid=amount_paid, details=details
            )
            if not applied:
                return LedgerResult(False, ledger.balance, 0, ref)
            index = self.payment_index(payment_ref, account_id)
            position = self.store.save_all(ledger, index)
            return LedgerResult(True, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    def reverse(
        self,
        account_id: UUID,
        payment_ref: str,
        *,
        target_total: int,
        ref: str,
        details: dict[str, str] | None = None,
    ) -> LedgerResult:
        def attempt() -> LedgerResult:
            ledger = self.load_ledger(account_id)
            applied = ledger.reverse(
                payment_ref, target_total=target_total, ref=ref, details=details
            )
            position = self.store.save_all(ledger) if applied else 0
            return LedgerResult(applied, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    def reinstate(
        self,
        account_id: UUID,
        payment_ref: str,
        *,
        ref: str,
        details: dict[str, str] | None = None,
    ) -> LedgerResult:
        def attempt() -> LedgerResult:
            ledger = self.load_ledger(account_id)
            applied = ledger.reinstate(payment_ref, ref=ref, details=details)
            position = self.store.save_all(ledger) if applied else 0
            return LedgerResult(applied, ledger.balance, position, ref)

        return self.retry(account_id, attempt)

    # -- helpers ----------------------------------------------------------------------------

    def payment_index(self, payment_ref: str, account_id: UUID) -> PaymentIndex | None:
        """A new index entry for ``payment_ref`` (None when it exists already)."""
        if self.store.find(payment_index_id(payment_ref), PaymentIndex) is not None:
            return None
        return PaymentIndex(payment_ref=payment_ref, account_id=account_id)

    def account_of_payment(self, payment_ref: str) -> UUID | None:
        index = self.store.find(payment_index_id(payment_ref), PaymentIndex)
        return index.account_id if index is not None else None
