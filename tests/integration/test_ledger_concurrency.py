"""50 parallel debits of 1 credit against a balance of 10 on PostgreSQL: exactly 10 win.

The threads are split over two containers (two event-store connections pools, as two
server processes would have), so the per-process lock does not serialise them all and
the store's optimistic concurrency is what keeps the balance right.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest

from backline.domain.credits import InsufficientCredits
from backline.infra.container import Container
from backline.projections.credits import LedgerAuditor
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres


def test_fifty_parallel_debits_against_ten_credits(pg_url: str, tmp_path: Path) -> None:
    first = Container.build(make_settings(pg_url, tmp_path / "a"))
    second = Container.build(make_settings(pg_url, tmp_path / "b"))
    try:
        account = first.accounts.register(
            "ada@example.com", "correct horse battery staple"
        ).account_id
        first.credits.grant(account, 10, "promo:start")
        outcomes: Counter[str] = Counter()
        lock = threading.Lock()
        barrier = threading.Barrier(50)

        def debit(i: int) -> None:
            c = first if i % 2 else second
            barrier.wait()
            try:
                result = c.credits.debit(account, 1, f"release:r{i}")
                outcome = "ok" if result.applied else "duplicate"
            except InsufficientCredits:
                outcome = "insufficient"
            except Exception as e:  # pragma: no cover - reported below
                outcome = type(e).__name__
            with lock:
                outcomes[outcome] += 1

        threads = [threading.Thread(target=debit, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert outcomes == Counter({"ok": 10, "insufficient": 40})
        assert first.credits.balance(account) == 0
        # Every retried debit wrote at most once: ten debits in the log, audit clean.
        first.runner.catch_up()
        report = LedgerAuditor(first.store, first.read).audit(account)
        assert report.ok, report.differences
        assert report.events == 11
    finally:
        first.close()
        second.close()
