"""Credit history read model, its queries, and the ledger auditor.

``credit_balances`` holds one row per ledger (balance and lifetime aggregates);
``credit_transactions`` one row per transaction, keyed by (ledger, version). The
auditor reads the projection's rows and its tracking position in one snapshot and
replays the event log up to exactly that position.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.utils import get_topic

from backline.application.store import EventStore
from backline.domain.credits import (
    DEBIT,
    PURCHASE,
    REFUND,
    REINSTATEMENT,
    REVERSAL,
    TRANSACTION_EVENTS,
    TYPE_BY_TOPIC,
    CreditLedger,
    LedgerFold,
    ledger_id,
    transaction_id,
)
from backline.projections.db import Column, ReadStore, Table, Tx
from backline.projections.framework import Batch, Projection, handles
from backline.projections.kv import KeyValueTable

BALANCES = Table(
    name="credit_balances",
    columns=(
        Column("ledger_id", "text", nullable=False),
        Column("account_id", "text"),
        Column("balance", "int", nullable=False),
        Column("used_total", "int", nullable=False),
        Column("purchased_total", "int", nullable=False),
        Column("tx_count", "int", nullable=False),
        Column("last_version", "int", nullable=False),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("ledger_id",),
)

TRANSACTIONS = Table(
    name="credit_transactions",
    columns=(
        Column("ledger_id", "text", nullable=False),
        Column("version", "int", nullable=False),
        Column("id", "text", nullable=False),
        Column("type", "text", nullable=False),
        Column("amount", "int", nullable=False),
        Column("balance_after", "int", nullable=False),
        Column("ref", "text", nullable=False),
        Column("created_at", "timestamp"),
    ),
    primary_key=("ledger_id", "version"),
)

_TOTALS = {
    DEBIT: ("used_total", 1),
    REFUND: ("used_total", -1),
    PURCHASE: ("purchased_total", 1),
    REVERSAL: ("purchased_total", -1),
    REINSTATEMENT: ("purchased_total", 1),
}


def _empty_balance(ledger: str, account_id: str | None, at: Any) -> dict[str, Any]:
    return {
        "ledger_id": ledger,
        "account_id": account_id,
        "balance": 0,
        "used_total": 0,
        "purchased_total": 0,
        "tx_count": 0,
        "last_version": 0,
        "updated_at": at,
    }


class CreditHistoryProjection(Projection):
    name = "credit_history"
    version = 1
    tables = (BALANCES, TRANSACTIONS)

    @handles(CreditLedger.Opened)
    def opened(self, batch: Batch, e: Any) -> None:
        ledger = str(e.originator_id)
        row = batch.get("credit_balances", ledger) or _empty_balance(
            ledger, str(e.account_id), e.timestamp
        )
        row["account_id"] = str(e.account_id)
        batch.put("credit_balances", row)

    @handles(*TRANSACTION_EVENTS)
    def transaction(self, batch: Batch, e: Any) -> None:
        ledger = str(e.originator_id)
        tx_type = type(e).TX_TYPE
        batch.put(
            "credit_transactions",
            {
                "ledger_id": ledger,
                "version": e.originator_version,
                "id": str(transaction_id(e.originator_id, e.originator_version)),
                "type": tx_type,
                "amount": e.amount,
                "balance_after": e.balance_after,
                "ref": e.ref,
                "created_at": e.timestamp,
            },
        )
        row = batch.get("credit_balances", ledger) or _empty_balance(ledger, None, e.timestamp)
        row["balance"] = e.balance_after
        total = _TOTALS.get(tx_type)
        if total is not None:
            row[total[0]] += total[1] * e.amount
        row["tx_count"] += 1
        row["last_version"] = e.originator_version
        row["updated_at"] = e.timestamp
        batch.put("credit_balances", row)


class CreditQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def balance_row(self, account_id: UUID) -> dict[str, Any] | None:
        with self.read.read() as tx:
            return tx.get_row(BALANCES, (str(ledger_id(account_id)),))

    def transactions(self, account_id: UUID, limit: int = 10) -> list[dict[str, Any]]:
        if limit <= 0:
            return []
        with self.read.read() as tx:
            return tx.select_rows(
                TRANSACTIONS,
                "ledger_id = ?",
                (str(ledger_id(account_id)), limit),
                tail="ORDER BY version DESC LIMIT ?",
            )


class KvPositionStore:
    """Tracking positions of process managers, in the shared key-value table."""

    NAMESPACE = "process_position"

    def __init__(self, kv: KeyValueTable) -> None:
        self.kv = kv

    def get_position(self, name: str) -> int:
        raw = self.kv.get(self.NAMESPACE, name)
        return int(raw.decode()) if raw else 0

    def set_position(self, name: str, position: int) -> None:
        self.kv.set(self.NAMESPACE, name, str(position).encode(), None)


# -- the auditor ---------------------------------------------------------------------------


class _TxState(msgspec.Struct):
    amount: int
    balance_after: int
    ref: str


_TX_DECODER = msgspec.json.Decoder(_TxState)


@dataclass
class AuditReport:
    position: int
    events: int = 0
    ledgers: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def differ(self, text: str) -> None:
        if len(self.differences) < 200:
            self.differences.append(text)


class _ProjectionSide:
    """Reads the projection's position and rows in one snapshot (see ``audit``)."""

    def __init__(self, read: ReadStore, only: str | None) -> None:
        self.read = read
        self.only = only
        self.position = 0
        self.seen: dict[str, list[int]] = {}
        self.balance_rows: list[dict[str, Any]] = []

    def run(self) -> None:
        only, seen = self.only, self.seen
        with self.read.read() as tx:
            if tx.dialect == "postgres":
                # One snapshot: the tracking position and the rows it covers.
                tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = tx.fetchone(
                "SELECT position FROM projection_tracking WHERE name = ?",
                (CreditHistoryProjection.name,),
            )
            self.position = int(row[0]) if row else 0
            where = "WHERE ledger_id = ?" if only else ""
            params: tuple[Any, ...] = (only,) if only else ()
            query = (
                "SELECT ledger_id, version, type, amount, balance_after, ref "
                f"FROM credit_transactions {where}"
            )
            for rows in _stream(tx, query, params):
                for ledger, version, tx_type, amount, balance_after, ref in rows:
                    acc = seen.get(ledger)
                    if acc is None:
                        acc = seen[ledger] = [0, 0]
                    acc[0] += 1
                    acc[1] += hash((version, tx_type, amount, balance_after, ref))
            self.balance_rows = tx.select_rows(BALANCES, "ledger_id = ?" if only else "", params)


class LedgerAuditor:
    """Replays ledgers from the event store and compares them with the projection.

    Per ledger it folds the transactions (checking balance arithmetic, non-negative
    balances and unique refs) and keeps an order-independent digest of every
    transaction (version, type, amount, balance_after, ref); the projection's rows up to
    the same log position must give the same digest, count, balance and totals.
    """

    topics = sorted([get_topic(c) for c in TRANSACTION_EVENTS])

    def __init__(self, store: EventStore, read: ReadStore, *, batch_size: int = 20_000) -> None:
        self.store = store
        self.read = read
        self.batch_size = batch_size

    def audit(self, account_id: UUID | None = None) -> AuditReport:
        only = str(ledger_id(account_id)) if account_id is not None else None
        # First the projection (position and rows in one snapshot), then the log up to
        # exactly that position. (Reading both at once in two threads was slower: both
        # sides are CPU-bound Python.)
        side = _ProjectionSide(self.read, only)
        side.run()
        position = side.position
        report = AuditReport(position=position)
        folds: dict[str, LedgerFold] = {}
        digests: dict[str, int] = {}
        for batch in self._event_batches(position, only):
            for ledger, version, tx_type, state in batch:
                fold = folds.get(ledger)
                if fold is None:
                    fold = folds[ledger] = LedgerFold()
                    digests[ledger] = 0
                amount, balance_after, ref = state.amount, state.balance_after, state.ref
                fold.add(tx_type, version, amount, balance_after, ref)
                digests[ledger] += hash((version, tx_type, amount, balance_after, ref))
            report.events += len(batch)
        report.ledgers = len(folds)
        seen, balance_rows = side.seen, side.balance_rows
        for ledger, fold in folds.items():
            for problem in fold.problems:
                report.differ(f"ledger {ledger}: event log: {problem}")

        balances = {r["ledger_id"]: r for r in balance_rows}
        for ledger in sorted(set(folds) | set(seen)):
            fold = folds.get(ledger) or LedgerFold()
            count, digest = seen.get(ledger, [0, 0])
            if count != fold.transactions:
                report.differ(
                    f"ledger {ledger}: {fold.transactions} transactions in the log, "
                    f"{count} in the projection"
                )
            elif digest != digests.get(ledger, 0):
                report.differ(f"ledger {ledger}: {self._first_difference(ledger, fold)}")
            brow = balances.get(ledger)
            if brow is None:
                if fold.transactions:
                    report.differ(f"ledger {ledger}: no balance row in the projection")
                continue
            for name, expected in (
                ("balance", fold.balance),
                ("used_total", fold.used_total),
                ("purchased_total", fold.purchased_total),
                ("tx_count", fold.transactions),
                ("last_version", fold.last_version),
            ):
                if int(brow[name]) != expected:
                    report.differ(
                        f"ledger {ledger}: projection {name} {brow[name]} != replayed {expected}"
                    )
        return report

    def _event_batches(
        self, stop: int, only: str | None
    ) -> Iterator[list[tuple[str, int, str, _TxState]]]:
        """The ledger transactions in the log up to ``stop``, in batches, decoded."""
        decode = _TX_DECODER.decode
        types = TYPE_BY_TOPIC
        recorder: Any = self.store.recorder
        if type(recorder).__module__ == "eventsourcing.postgres":
            yield from self._pg_event_batches(recorder, stop, only)
            return
        start = 0
        while start < stop:
            notes = recorder.select_notifications(
                start=start,
                limit=self.batch_size,
                stop=stop,
                topics=self.topics,
                inclusive_of_start=False,
            )
            if not notes:
                return
            batch = [
                (str(n.originator_id), n.originator_version, types[n.topic], decode(n.state))
                for n in notes
            ]
            yield [b for b in batch if b[0] == only] if only is not None else batch
            start = notes[-1].id

    def _pg_event_batches(
        self, recorder: Any, stop: int, only: str | None
    ) -> Iterator[list[tuple[str, int, str, _TxState]]]:
        """PostgreSQL fast path: one server-side binary cursor over the events table,
        only the columns the audit needs (the library's reader builds objects per row)."""
        from psycopg import sql
        from psycopg.rows import tuple_row

        decode = _TX_DECODER.decode
        types = TYPE_BY_TOPIC
        where = " AND originator_id = %s" if only is not None else ""
        query = sql.SQL(
            "SELECT originator_id::text, originator_version, topic, state FROM {}.{} "
            "WHERE notification_id <= %s AND topic = ANY(%s)" + where + " ORDER BY notification_id"
        ).format(
            sql.Identifier(recorder.datastore.schema), sql.Identifier(recorder.events_table_name)
        )
        params: tuple[Any, ...] = (stop, self.topics) + ((UUID(only),) if only else ())
        with (
            recorder.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(name="ledger_audit_events", binary=True, row_factory=tuple_row) as cur,
        ):
            cur.itersize = self.batch_size
            cur.execute(query, params)
            while True:
                rows = cur.fetchmany(self.batch_size)
                if not rows:
                    return
                yield [(o, v, types[t], decode(st)) for o, v, t, st in rows]

    def _first_difference(self, ledger: str, fold: LedgerFold) -> str:
        """Slow path for one ledger whose digest differs: name the first differing row."""
        log_rows = [
            (se.originator_version, TYPE_BY_TOPIC[se.topic], s.amount, s.balance_after, s.ref)
            for se in self.store.recorder.select_events(UUID(ledger))
            if se.topic in TYPE_BY_TOPIC
            for s in [_TX_DECODER.decode(se.state)]
        ]
        with self.read.read() as tx:
            proj_rows = tx.fetchall(
                "SELECT version, type, amount, balance_after, ref FROM credit_transactions "
                "WHERE ledger_id = ? AND version <= ? ORDER BY version",
                (ledger, fold.last_version),
            )
        for a, b in zip(log_rows, proj_rows, strict=False):
            if tuple(a) != tuple(b):
                return f"transaction v{a[0]} differs: log {a} vs projection {tuple(b)}"
        return "transactions differ"


def _stream(tx: Tx, query: str, params: tuple[Any, ...]) -> Iterator[list[tuple[Any, ...]]]:
    """Rows in chunks; a server-side binary cursor on PostgreSQL (no full materialising)."""
    if tx.dialect == "postgres":
        with tx.conn.cursor(name="ledger_audit_rows", binary=True) as cur:
            cur.itersize = 50_000
            cur.execute(query.replace("?", "%s"), params)
            while True:
                rows = cur.fetchmany(50_000)
                if not rows:
                    return
                yield rows
    else:
        cur = tx.execute(query, params)
        while True:
            rows = cur.fetchmany(10_000)
            if not rows:
                return
            yield rows


def export_ledger(store: EventStore, account_id: UUID, fmt: str) -> str:
    """Every transaction of one account, from the event store, as CSV or JSON."""
    lid = ledger_id(account_id)
    rows: list[dict[str, Any]] = []
    mapper = store.mapper
    for se in store.recorder.select_events(lid):
        if se.topic not in TYPE_BY_TOPIC:
            continue
        e: Any = mapper.to_domain_event(se)
        rows.append(
            {
                "id": str(transaction_id(lid, e.originator_version)),
                "version": e.originator_version,
                "type": TYPE_BY_TOPIC[se.topic],
                "amount": e.amount,
                "balance_after": e.balance_after,
                "ref": e.ref,
                "created_at": e.timestamp.isoformat(),
                "details": dict(e.details),
            }
        )
    if fmt == "json":
        body = {"account_id": str(account_id), "ledger_id": str(lid), "transactions": rows}
        return msgspec.json.format(msgspec.json.encode(body)).decode() + "\n"
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cols = ["id", "version", "type", "amount", "balance_after", "ref", "created_at", "details"]
    writer.writerow(cols)
    for r in rows:
        r["details"] = msgspec.json.encode(r["details"]).decode()
        writer.writerow([r[c] for c in cols])
    return out.getvalue()
