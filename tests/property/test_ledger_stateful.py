"""Hypothesis stateful test of the CreditLedger through the real store and projection.

A model tracks what the ledger should hold; every rule goes through ``CreditService``
(saving to a real SQLite event store), and the invariants check the stored events:
balance == sum of transactions, never negative, every ref at most once, and the
replayed ledger == the credit history projection (via the auditor).
"""

from __future__ import annotations

import shutil
import tempfile
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from backline.adapters.msgspec_mapper import make_msgspec_mapper
from backline.application.credits import CreditService
from backline.application.store import EventStore
from backline.domain.credits import (
    SIGNS,
    TYPE_BY_TOPIC,
    CreditLedger,
    InsufficientCredits,
    ledger_id,
)
from backline.domain.errors import Conflict
from backline.projections.credits import CreditHistoryProjection, CreditQueries, LedgerAuditor
from backline.projections.db import ReadStore
from backline.projections.framework import ProjectionRunner

REFS = st.sampled_from([f"r{i}" for i in range(10)])
AMOUNTS = st.integers(min_value=1, max_value=40)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="ledger-prop-")
        self.store = EventStore(
            env={
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": f"{self.tmp}/es.db",
            },
            mapper_factory=make_msgspec_mapper,
        )
        self.read = ReadStore(f"sqlite:///{self.tmp}/read.db")
        self.runner = ProjectionRunner(self.store, self.read, [CreditHistoryProjection()])
        self.runner.setup()
        self.credits = CreditService(self.store)
        self.account = uuid4()
        self.balance = 0
        self.refs: set[str] = set()
        self.debits: dict[str, list[int]] = {}  # ref -> [amount, refunded]
        self.purchases: dict[str, list[int]] = {}  # payment -> [credits, target, taken]

    def teardown(self) -> None:
        self.read.close()
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- commands ---------------------------------------------------------------------

    @rule(amount=AMOUNTS, ref=REFS)
    def purchase(self, amount: int, ref: str) -> None:
        key, payment = f"buy:{ref}", f"pi_{ref}"
        result = self.credits.purchase(
            self.account, amount, key, payment_ref=payment, amount_paid=amount * 100
        )
        expected = key not in self.refs and payment not in self.purchases
        assert result.applied is expected
        if expected:
            self.refs.add(key)
            self.purchases[payment] = [amount, 0, 0]
            self.balance += amount

    @rule(amount=AMOUNTS, ref=REFS)
    def grant(self, amount: int, ref: str) -> None:
        key = f"grant:{ref}"
        result = self.credits.grant(self.account, amount, key)
        assert result.applied is (key not in self.refs)
        if result.applied:
            self.refs.add(key)
            self.balance += amount

    @rule(amount=AMOUNTS, ref=REFS)
    def debit(self, amount: int, ref: str) -> None:
        key = f"release:{ref}"
        if key in self.refs:
            assert self.credits.debit(self.account, amount, key).applied is False
            return
        if amount > self.balance:
            with pytest.raises(InsufficientCredits) as e:
                self.credits.debit(self.account, amount, key)
            assert e.value.details == {"needed": amount, "available": self.balance}
            return
        result = self.credits.debit(self.account, amount, key)
        assert result.applied
        self.refs.add(key)
        self.debits[key] = [amount, 0]
        self.balance -= amount

    @precondition(lambda self: bool(self.debits))
    @rule(data=st.data(), amount=AMOUNTS)
    def refund(self, data: Any, amount: int) -> None:
        of_ref = data.draw(st.sampled_from(sorted(self.debits)))
        key = f"refund:{of_ref}:{amount}"
        taken, refunded = self.debits[of_ref]
        if key in self.refs:
            assert self.credits.refund(self.account, amount, key, of_ref=of_ref).applied is False
            return
        if amount > taken - refunded:
            with pytest.raises(Conflict):
                self.credits.refund(self.account, amount, key, of_ref=of_ref)
            return
        assert self.credits.refund(self.account, amount, key, of_ref=of_ref).applied
        self.refs.add(key)
        self.debits[of_ref][1] += amount
        self.balance += amount

    @precondition(lambda self: bool(self.purchases))
    @rule(data=st.data())
    def reverse(self, data: Any) -> None:
        payment = data.draw(st.sampled_from(sorted(self.purchases)))
        credits, already, _taken = self.purchases[payment]
        target = data.draw(st.integers(min_value=0, max_value=credits))
        key = f"reversal:{payment}:{target}"
        result = self.credits.reverse(self.account, payment, target_total=target, ref=key)
        wanted = target - already
        if wanted <= 0 or key in self.refs:
            assert result.applied is False
            return
        assert result.applied
        self.refs.add(key)
        taken = min(wanted, self.balance)
        self.purchases[payment][1] = target
        self.purchases[payment][2] += taken
        self.balance -= taken

    @precondition(lambda self: bool(self.purchases))
    @rule(data=st.data(), ref=REFS)
    def reinstate(self, data: Any, ref: str) -> None:
        payment = data.draw(st.sampled_from(sorted(self.purchases)))
        key = f"reinstatement:{ref}"
        result = self.credits.reinstate(self.account, payment, ref=key)
        taken = self.purchases[payment][2]
        expected = taken > 0 and key not in self.refs
        assert result.applied is expected
        if expected:
            self.refs.add(key)
            self.balance += taken
            self.purchases[payment][1:] = [0, 0]

    @rule()
    def replay_equals_projection(self) -> None:
        self.runner.catch_up()
        report = LedgerAuditor(self.store, self.read).audit()
        assert report.ok, report.differences
        row = CreditQueries(self.read).balance_row(self.account)
        assert (row["balance"] if row else 0) == self.balance

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def stored_events_add_up(self) -> None:
        mapper = self.store.mapper
        balance, refs = 0, []
        for se in self.store.recorder.select_events(ledger_id(self.account)):
            tx_type = TYPE_BY_TOPIC.get(se.topic)
            if tx_type is None:
                continue
            e: Any = mapper.to_domain_event(se)
            balance += SIGNS[tx_type] * e.amount
            assert e.amount > 0
            assert e.balance_after == balance
            assert balance >= 0
            refs.append(e.ref)
        assert len(refs) == len(set(refs)), "a ref was applied twice"
        assert balance == self.balance
        assert self.credits.balance(self.account) == self.balance
        # A full replay (no cache) equals the service's fast-forwarded cached ledger.
        fresh = self.store.find(ledger_id(self.account), CreditLedger)
        cached = self.credits.ledger_by_id(ledger_id(self.account))
        if fresh is None:
            assert cached is None
        else:
            assert cached is not None
            assert (fresh.version, fresh.balance, fresh.refs, fresh.purchases, fresh.debits) == (
                cached.version,
                cached.balance,
                cached.refs,
                cached.purchases,
                cached.debits,
            )


TestLedgerStateful = LedgerMachine.TestCase
TestLedgerStateful.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
