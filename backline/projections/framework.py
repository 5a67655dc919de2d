"""Projection framework: batched handlers, rows and tracking in one transaction.

A :class:`Projection` declares its tables and handlers (``@handles(EventClass)``).
The :class:`ProjectionRunner` reads the notification log in batches, applies every
event of a batch through a :class:`Batch` (an in-memory unit of work that coalesces
row writes), flushes the rows and moves the tracking position in the same
transaction. A crash rolls the whole batch back, so on restart nothing is applied
twice or skipped. Several runners (threads or processes) may run: the tracking row is
locked and re-checked inside the transaction, so only one applies a given batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import structlog
from eventsourcing.utils import get_topic

from backline.application.store import EventStore
from backline.projections.db import Column, ReadStore, Table, Tx

log = structlog.get_logger(__name__)

E = TypeVar("E")
Handler = Callable[[Any, "Batch", Any], None]

TRACKING = Table(
    name="projection_tracking",
    columns=(
        Column("name", "text", nullable=False),
        Column("position", "int", nullable=False),
        Column("version", "int", nullable=False),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("name",),
)

_DELETED = object()


def handles(*event_classes: type[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a projection method as the handler of the given event classes."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        existing: tuple[type[Any], ...] = getattr(fn, "_handles", ())
        fn._handles = existing + event_classes  # type: ignore[attr-defined]
        return fn

    return decorate


class Batch:
    """Unit of work for one batch: cached reads, coalesced writes, one flush."""

    def __init__(self, tx: Tx, tables: Sequence[Table]) -> None:
        self.tx = tx
        self._tables = {t.name: t for t in tables}
        self._rows: dict[str, dict[tuple[Any, ...], Any]] = {t.name: {} for t in tables}

    def table(self, name: str) -> Table:
        return self._tables[name]

    def get(self, table: str, *key: Any) -> dict[str, Any] | None:
        rows = self._rows[table]
        if key in rows:
            row = rows[key]
            return None if row is _DELETED else dict(row)
        found = self.tx.get_row(self._tables[table], key)
        rows[key] = _DELETED if found is None else found
        return dict(found) if found is not None else None

    def put(self, table: str, row: dict[str, Any]) -> None:
        spec = self._tables[table]
        full = {c: row.get(c) for c in spec.column_names}
        self._rows[table][spec.key(full)] = full

    def patch(self, table: str, *key: Any, **changes: Any) -> dict[str, Any] | None:
        row = self.get(table, *key)
        if row is None:
            return None
        row.update(changes)
        self.put(table, row)
        return row

    def delete(self, table: str, *key: Any) -> None:
        self._rows[table][tuple(key)] = _DELETED

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run custom SQL after flushing, so it sees every buffered write."""
        self.flush()
        return self.tx.execute(sql, params)

    def flush(self) -> None:
        for name, rows in self._rows.items():
            if not rows:
                continue
            spec = self._tables[name]
            deletes = [k for k, v in rows.items() if v is _DELETED]
            upserts = [self.tx.encode_row(spec, v) for v in rows.values() if v is not _DELETED]
            if deletes:
                self.tx.executemany(spec.delete_sql(), deletes)
            if upserts:
                self.tx.copy_rows(spec, upserts)
        self._rows = {n: {} for n in self._tables}


class Projection:
    """Base class: subclasses set ``name``, ``version``, ``tables`` and handlers."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]] = ()
    _handlers: ClassVar[dict[type[Any], Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type[Any], Handler] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for event_cls in getattr(attr, "_handles", ()):
                    handlers[event_cls] = attr
        cls._handlers = handlers

    @property
    def topics(self) -> list[str]:
        return sorted({get_topic(c) for c in self._handlers})

    def apply(self, batch: Batch, events: Iterable[Any]) -> None:
        handlers = self._handlers
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                handler(self, batch, event)


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    position: int
    head: int
    lag: int
    stored_version: int | None


class ProjectionRunner:
    """Keeps projections up to date with the event store."""

    def __init__(
        self,
        store: EventStore,
        read: ReadStore,
        projections: Sequence[Projection],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        rebuild_batch_size: int = 5000,
    ) -> None:
        self.store = store
        self.read = read
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.rebuild_batch_size = rebuild_batch_size
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self.before_commit: Callable[[str, int], None] | None = None  # fault-injection hook
        store.add_listener(lambda _pos: self._wake.set())

    # -- schema --------------------------------------------------------------------

    def setup(self) -> None:
        """Create tables; rebuild any projection whose version changed."""
        with self.read.transaction() as tx:
            for stmt in TRACKING.ddl(tx.dialect):
                tx.execute(stmt)
        for projection in self.projections.values():
            stored = self._stored_version(projection.name)
            if stored is not None and stored != projection.version:
                log.warning(
                    "projection_version_changed",
                    projection=projection.name,
                    stored=stored,
                    version=projection.version,
                )
                self.rebuild(projection.name)
                continue
            with self.read.transaction() as tx:
                for table in projection.tables:
                    for stmt in table.ddl(tx.dialect):
                        tx.execute(stmt)
                tx.execute(
                    "INSERT INTO projection_tracking (name, position, version, updated_at) "
                    "VALUES (?, 0, ?, ?) ON CONFLICT (name) DO NOTHING",
                    (projection.name, projection.version, _now(tx)),
                )

    def _stored_version(self, name: str) -> int | None:
        with self.read.read() as tx:
            row = tx.fetchone("SELECT version FROM projection_tracking WHERE name = ?", (name,))
        return int(row[0]) if row else None

    # -- processing -------------------------------------------------------------------

    def position(self, name: str) -> int:
        with self.read.read() as tx:
            row = tx.fetchone("SELECT position FROM projection_tracking WHERE name = ?", (name,))
        return int(row[0]) if row else 0

    def process_batch(self, name: str, *, batch_size: int | None = None) -> int:
        """Apply the next batch of one projection; return how many events were read."""
        projection = self.projections[name]
        size = batch_size or self.batch_size
        start = self.position(name)
        head = self.store.max_position()
        if start >= head:
            return 0
        notifications = self.store.recorder.select_notifications(
            start=start,
            limit=size,
            stop=head,
            topics=projection.topics,
            inclusive_of_start=False,
        )
        new_position = notifications[-1].id if len(notifications) == size else head
        if not notifications:
            new_position = head
        mapper = self.store.mapper
        events = [mapper.to_domain_event(n) for n in notifications]
        with self.read.transaction() as tx:
            lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
            row = tx.fetchone(
                f"SELECT position FROM projection_tracking WHERE name = ?{lock}", (name,)
            )
            if row is None or int(row[0]) != start:
                return 0  # another runner moved it; re-read next round
            batch = Batch(tx, projection.tables)
            projection.apply(batch, events)
            batch.flush()
            tx.execute(
                "UPDATE projection_tracking SET position = ?, updated_at = ? WHERE name = ?",
                (new_position, _now(tx), name),
            )
            if self.before_commit is not None:
                self.before_commit(name, new_position)
        with self._progress:
            self._progress.notify_all()
        return max(len(notifications), 1)

    def catch_up(self, name: str | None = None, *, batch_size: int | None = None) -> int:
        names = [name] if name else list(self.projections)
        total = 0
        for n in names:
            while True:
                done = self.process_batch(n, batch_size=batch_size)
                if not done:
                    break
                total += done
        return total

    def rebuild(self, name: str) -> int:
        """Drop the projection's tables and replay the whole log (batched)."""
        projection = self.projections[name]
        with self.read.transaction() as tx:
            for table in projection.tables:
                tx.execute(table.drop())
                for stmt in table.ddl(tx.dialect):
                    tx.execute(stmt)
            tx.execute(
                "INSERT INTO projection_tracking (name, position, version, updated_at) "
                "VALUES (?, 0, ?, ?) ON CONFLICT (name) DO UPDATE SET position = 0, "
                "version = excluded.version, updated_at = excluded.updated_at",
                (name, projection.version, _now(tx)),
            )
        return self.catch_up(name, batch_size=self.rebuild_batch_size)

    def status(self) -> list[ProjectionStatus]:
        head = self.store.max_position()
        out = []
        for p in self.projections.values():
            pos = self.position(p.name)
            out.append(
                ProjectionStatus(
                    name=p.name,
                    version=p.version,
                    position=pos,
                    head=head,
                    lag=max(0, head - pos),
                    stored_version=self._stored_version(p.name),
                )
            )
        return out

    # -- read-your-writes -------------------------------------------------------------

    def wait_for(
        self, position: int, names: Sequence[str] | None = None, timeout: float = 5.0
    ) -> bool:
        """Block until the named projections have passed ``position`` (bounded)."""
        if position <= 0:
            return True
        deadline = time.monotonic() + timeout
        targets = list(names) if names else list(self.projections)
        self._wake.set()
        while True:
            if all(self.position(n) >= position for n in targets):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._thread is None:
                # No background runner in this process: do the work ourselves.
                for n in targets:
                    self.process_batch(n)
                continue
            with self._progress:
                self._progress.wait(timeout=min(remaining, 0.05))

    # -- background loop ----------------------------------------------------------------

    def run_forever(self, stop: threading.Event | None = None) -> None:
        stop_event = stop or self._stop
        while not stop_event.is_set():
            try:
                progressed = sum(self.process_batch(n) for n in self.projections)
            except Exception:
                log.exception("projection_batch_failed")
                progressed = 0
                stop_event.wait(1.0)
            if not progressed:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="projections", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _now(tx: Tx) -> Any:
    now = datetime.now(UTC)
    return now.isoformat() if tx.dialect == "sqlite" else now
