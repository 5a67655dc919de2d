"""Credit ledger benchmarks (issue 5), on PostgreSQL, each with a same-run baseline.

(a) debits per second through the use case (``CreditService.debit``: load the ledger,
    check balance and ref, save), vs appending the same debit events to ledgers already
    in memory (the store's write cost alone, no load, no checks);
(b) ``ledger audit`` speed in events/s over a 1,000,000-event ledger history (replay
    every ledger from the log, fold and check it, compare with the projection), vs a raw
    read of the same notifications from the log (no decoding). Target: >= 100,000
    events/s.

Run: ``.venv/bin/python -m bench.bench_ledger [--events N] [--debits N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from backline.domain.credits import CreditLedger
from backline.infra.container import Container
from backline.infra.settings import Settings
from backline.projections.credits import LedgerAuditor
from bench.common import fresh_pg, rate_line, ratio_line, settings_env, timed

AUDIT_TARGET = 100_000


def bench_debits(c: Container, debits: int, threads: int, rounds: int = 10) -> None:
    print(f"\n(a) debits through the use case on PostgreSQL, {debits} debits of 1 credit")
    accounts = [uuid.uuid4() for _ in range(threads + 1)]
    for a in accounts:
        c.credits.grant(a, 10 * debits, "bench:seed")
    baseline_ledger = c.credits.load_ledger(accounts[-1])
    per_round = max(1, debits // rounds)
    ours_secs = base_secs = 0.0
    done = 0
    # Interleaved rounds, so a load change on the machine hits both sides alike.
    for r in range(rounds):

        def use_case(r: int = r) -> None:
            for i in range(per_round):
                c.credits.debit(accounts[0], 1, f"release:{r}:{i}")

        def append_only(r: int = r) -> None:
            for i in range(per_round):
                baseline_ledger.debit(1, f"baseline:{r}:{i}")
                c.store.save_all(baseline_ledger)

        ours_secs += timed(use_case)[0]
        base_secs += timed(append_only)[0]
        done += per_round
    ours = rate_line("CreditService.debit, 1 thread (load+check+save)", done, ours_secs, "debit/s")
    base = rate_line("baseline: save one debit event, ledger in memory", done, base_secs, "debit/s")
    ratio_line("use case / append-only save (interleaved)", ours, base)

    per = debits // threads

    def one_thread(a: uuid.UUID, offset: int) -> None:
        for i in range(per):
            c.credits.debit(a, 1, f"parallel:{offset + i}")

    def parallel() -> None:
        ts = [
            threading.Thread(target=one_thread, args=(a, i * per))
            for i, a in enumerate(accounts[:threads])
        ]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    secs, _ = timed(parallel)
    rate_line(f"CreditService.debit, {threads} threads, one ledger each", per * threads, secs)


def build_history(c: Container, events: int, per_ledger: int, chunk: int = 20_000) -> int:
    """Write ``events`` ledger transaction events (purchases and debits) in big batches."""
    written = 0
    pending: list[CreditLedger] = []
    pending_events = 0
    while written < events:
        ledger = CreditLedger(account_id=uuid.uuid4())
        n = min(per_ledger, events - written)
        ledger.purchase(n, "checkout:seed", payment_ref=f"pi_{ledger.id.hex}", amount_paid=n * 100)
        for i in range(n - 1):
            if i % 10 == 9:
                ledger.grant(1, f"promo:{i}")
            else:
                ledger.debit(1, f"release:{i}")
            pending_events += 1
            if pending_events >= chunk:
                c.store.save_all(*pending, ledger)
                pending, pending_events = [], 0
        pending.append(ledger)
        written += n
    if pending:
        c.store.save_all(*pending)
    return written


def bench_audit(c: Container, events: int, per_ledger: int) -> None:
    print(f"\n(b) ledger audit over a {events:,}-event ledger history on PostgreSQL")
    secs, written = timed(lambda: build_history(c, events, per_ledger))
    rate_line("setup: write the history (batched saves)", written, secs, "events/s")
    secs, n = timed(lambda: c.runner.rebuild("credit_history"))
    rate_line("setup: rebuild the credit_history projection", n, secs, "events/s")

    auditor = LedgerAuditor(c.store, c.read)
    secs, report = timed(auditor.audit)
    assert report.ok, report.differences[:5]
    assert report.events >= written, (report.events, written)
    ours = rate_line(
        "ledger audit (replay + checks + compare projection)", report.events, secs, "events/s"
    )

    def raw_read() -> int:
        recorder: Any = c.store.recorder
        start, count, head = 0, 0, c.store.max_position()
        while True:
            notes = recorder.select_notifications(
                start=start,
                limit=20_000,
                stop=head,
                topics=auditor.topics,
                inclusive_of_start=False,
            )
            if not notes:
                return count
            count += len(notes)
            start = notes[-1].id

    secs, count = timed(raw_read)
    base = rate_line("baseline: library notification reader (no decode)", count, secs, "events/s")
    ratio_line("audit / library notification reader", ours, base)

    def cursor_scan() -> int:
        from psycopg import sql
        from psycopg.rows import tuple_row

        recorder: Any = c.store.recorder
        query = sql.SQL(
            "SELECT originator_id, originator_version, topic, state FROM {}.{} "
            "WHERE topic = ANY(%s) ORDER BY notification_id"
        ).format(
            sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name)
        )
        count = 0
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="scan", binary=True, row_factory=tuple_row) as cur,
        ):
            cur.itersize = 20_000
            cur.execute(query, (auditor.topics,))
            while rows := cur.fetchmany(20_000):
                count += len(rows)
        return count

    secs, count = timed(cursor_scan)
    floor = rate_line("baseline: bare cursor scan of the same rows", count, secs, "events/s")
    ratio_line("audit / bare cursor scan", ours, floor)
    verdict = "MET" if ours >= AUDIT_TARGET else "NOT MET"
    print(f"  target: audit >= {AUDIT_TARGET:,} events/s: {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--per-ledger", type=int, default=5_000)
    parser.add_argument("--debits", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        container = Container.build(Settings.from_env(settings_env(url, Path(tmp))))
        try:
            bench_debits(container, args.debits, args.threads)
            bench_audit(container, args.events, args.per_ledger)
        finally:
            container.close()
    print(f"\nbench_ledger finished in {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
