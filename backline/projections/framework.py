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

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import structlog
from eventsourcing.utils import get_topic

from backline.application.store import EventStore
from backline.application.worker import PollingWorker
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
_MISSING = object()


def handles(*event_classes: type[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Mark a projection method as the handler of the given event classes."""

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        existing: tuple[type[Any], ...] = getattr(fn, "_handles", ())
        fn._handles = existing + event_classes  # type: ignore[attr-defined]
        return fn

    return decorate


class Batch:
    """Unit of work for one batch: cached reads, coalesced writes, one flush.

    ``put`` takes ownership of the dict it is given. ``known_new`` (used by rebuilds)
    is the set of keys this rebuild has already written: any other key cannot exist in
    the freshly created tables, so it is inserted without a lookup or an upsert.
    """

    def __init__(self, tx: Tx, tables: Sequence[Table], known_new: set[Any] | None = None) -> None:
        self.tx = tx
        self._tables = {t.name: t for t in tables}
        self._rows: dict[str, dict[tuple[Any, ...], Any]] = {t.name: {} for t in tables}
        self._known = known_new

    def table(self, name: str) -> Table:
        return self._tables[name]

    def _lookup(self, table: str, key: tuple[Any, ...]) -> dict[str, Any] | None:
        rows = self._rows[table]
        row = rows.get(key, _MISSING)
        if row is _MISSING:
            known = self._known
            if known is not None and (table, key) not in known:
                found = None
            else:
                found = self.tx.get_row(self._tables[table], key)
            rows[key] = _DELETED if found is None else found
            return found
        return None if row is _DELETED else row

    def get(self, table: str, *key: Any) -> dict[str, Any] | None:
        row = self._lookup(table, key)
        return dict(row) if row is not None else None

    def put(self, table: str, row: dict[str, Any]) -> None:
        spec = self._tables[table]
        if len(row) != spec.width:
            row = {c: row.get(c) for c in spec.column_names}
        pk = spec.primary_key
        key = (row[pk[0]],) if len(pk) == 1 else spec.key(row)
        self._rows[table][key] = row

    def patch(self, table: str, *key: Any, **changes: Any) -> bool:
        """Update some columns of an existing row; False when there is no such row."""
        row = self._lookup(table, key)
        if row is None:
            return False
        row.update(changes)
        return True

    def delete(self, table: str, *key: Any) -> None:
        self._rows[table][tuple(key)] = _DELETED

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run custom SQL after flushing, so it sees every buffered write."""
        self.flush()
        return self.tx.execute(sql, params)

    def flush(self) -> None:
        known = self._known
        for name, rows in self._rows.items():
            if not rows:
                continue
            spec = self._tables[name]
            deletes = [k for k, v in rows.items() if v is _DELETED]
            if known is None:
                upserts = [self.tx.encode_row(spec, v) for v in rows.values() if v is not _DELETED]
                if deletes:
                    self.tx.executemany(spec.delete_sql(), deletes)
                if upserts:
                    self.tx.copy_rows(spec, upserts)
                continue
            fresh, seen = [], []
            for k, v in rows.items():
                if v is _DELETED:
                    continue
                if (name, k) in known:
                    seen.append(self.tx.encode_row(spec, v))
                else:
                    fresh.append(self.tx.encode_row(spec, v))
                    known.add((name, k))
            if deletes:
                self.tx.executemany(spec.delete_sql(), [k for k in deletes if (name, k) in known])
            if seen:
                self.tx.copy_rows(spec, seen)
            if fresh:
                self.tx.insert_rows(spec, fresh)
        self._rows = {n: {} for n in self._tables}


class Projection:
    """Base class: subclasses set ``name``, ``version``, ``tables`` and handlers."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]] = ()
    _handlers: ClassVar[dict[type[Any], Handler]]
    _by_topic: ClassVar[dict[str, Handler]]
    _by_type: ClassVar[dict[type[Any], Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[type[Any], Handler] = {}
        for klass in reversed(cls.__mro__):
            for attr in vars(klass).values():
                for event_cls in getattr(attr, "_handles", ()):
                    handlers[event_cls] = attr
        cls._handlers = handlers
        # Dispatch is by topic, so a handler serves the domain event and its read-only
        # view (MsgspecMapper.to_event_view) alike; resolved once per concrete type.
        cls._by_topic = {get_topic(c): h for c, h in handlers.items()}
        cls._by_type = {}

    @property
    def topics(self) -> list[str]:
        return sorted(self._by_topic)

    def apply(self, batch: Batch, events: Iterable[Any]) -> None:
        by_type = self._by_type
        for event in events:
            kind = type(event)
            handler = by_type.get(kind, _MISSING)
            if handler is _MISSING:
                topic = getattr(kind, "TOPIC", None) or get_topic(kind)
                handler = by_type[kind] = self._by_topic.get(topic)
            if handler is not None:
                handler(self, batch, event)


@dataclass(frozen=True)
class _Fetched:
    start: int
    new_position: int
    events: list[Any]


@dataclass(frozen=True)
class ProjectionStatus:
    name: str
    version: int
    position: int
    head: int
    lag: int
    stored_version: int | None


class ProjectionRunner(PollingWorker):
    """Keeps projections up to date with the event store."""

    name = "projections"

    def __init__(
        self,
        store: EventStore,
        read: ReadStore,
        projections: Sequence[Projection],
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        rebuild_batch_size: int = 10000,
    ) -> None:
        self.store = store
        self.read = read
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.rebuild_batch_size = rebuild_batch_size
        super().__init__(store, poll_interval=poll_interval)
        self._progress = threading.Condition()
        self.before_commit: Callable[[str, int], None] | None = None  # fault-injection hook

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

    def _read(self, projection: Projection, start: int, head: int, size: int) -> _Fetched:
        """Read and decode the next batch after ``start`` (up to ``head``)."""
        notifications = self.store.recorder.select_notifications(
            start=start,
            limit=size,
            stop=head,
            topics=projection.topics,
            inclusive_of_start=False,
        )
        # With a topic filter a short batch means "nothing more of ours up to head".
        new_position = notifications[-1].id if len(notifications) == size else head
        mapper = self.store.mapper
        to_event = getattr(mapper, "to_event_view", None) or mapper.to_domain_event
        return _Fetched(start, new_position, [to_event(n) for n in notifications])

    def _apply(self, name: str, fetched: _Fetched, known_new: set[Any] | None = None) -> bool:
        """Apply one batch and move tracking, atomically; False if another runner moved it."""
        projection = self.projections[name]
        with self.read.transaction() as tx:
            lock = " FOR UPDATE" if tx.dialect == "postgres" else ""
            row = tx.fetchone(
                f"SELECT position FROM projection_tracking WHERE name = ?{lock}", (name,)
            )
            if row is None or int(row[0]) != fetched.start:
                return False
            batch = Batch(tx, projection.tables, known_new=known_new)
            projection.apply(batch, fetched.events)
            batch.flush()
            tx.execute(
                "UPDATE projection_tracking SET position = ?, updated_at = ? WHERE name = ?",
                (fetched.new_position, _now(tx), name),
            )
            if self.before_commit is not None:
                self.before_commit(name, fetched.new_position)
        with self._progress:
            self._progress.notify_all()
        return True

    def process_batch(self, name: str, *, batch_size: int | None = None) -> int:
        """Apply the next batch of one projection; return how many events it applied.

        Returns -1 when only the position moved (no events of this projection's topics).
        0 means nothing to do (or another runner took the batch).
        """
        projection = self.projections[name]
        start = self.position(name)
        head = self.store.max_position()
        if start >= head:
            return 0
        fetched = self._read(projection, start, head, batch_size or self.batch_size)
        if not self._apply(name, fetched):
            return 0
        return len(fetched.events) or -1

    def catch_up(self, name: str | None = None, *, batch_size: int | None = None) -> int:
        """Process until caught up with the head seen at the start; return events applied.

        Reading the next batch overlaps with applying the current one (a reader thread),
        so a long catch-up or a rebuild runs at close to the log's raw read speed.
        """
        names = [name] if name else list(self.projections)
        return sum(self._catch_up_one(n, batch_size or self.batch_size) for n in names)

    def _catch_up_one(self, name: str, size: int, known_new: set[Any] | None = None) -> int:
        projection = self.projections[name]
        start = self.position(name)
        head = self.store.max_position()
        if start >= head:
            return 0
        fetched_q: queue.Queue[_Fetched | BaseException | None] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def reader() -> None:
            position = start
            try:
                while position < head and not stop.is_set():
                    fetched = self._read(projection, position, head, size)
                    fetched_q.put(fetched)
                    position = fetched.new_position
            except BaseException as e:  # handed to the applying thread
                fetched_q.put(e)
            fetched_q.put(None)

        thread = threading.Thread(target=reader, name=f"catch-up-{name}", daemon=True)
        thread.start()
        applied = 0
        try:
            while True:
                item = fetched_q.get()
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise item
                if not self._apply(name, item, known_new):
                    break  # another runner is ahead; it will carry on
                applied += len(item.events)
        finally:
            stop.set()
            while thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    fetched_q.get(timeout=0.1)
            thread.join()
        # Events recorded while we were catching up are picked up by the next round.
        return applied + self._catch_up_rest(name, size)

    def _catch_up_rest(self, name: str, size: int) -> int:
        total = 0
        while True:
            done = self.process_batch(name, batch_size=size)
            if done == 0:
                return total
            total += max(done, 0)

    def rebuild(self, name: str) -> int:
        """Drop the projection's tables and replay the whole log (batched)."""
        projection = self.projections[name]
        with self.read.transaction() as tx:
            for table in projection.tables:
                tx.execute(table.drop())
                # Secondary indexes are built once at the end (bulk-load), not per row.
                for stmt in table.ddl(tx.dialect, indexes=False):
                    tx.execute(stmt)
            tx.execute(
                "INSERT INTO projection_tracking (name, position, version, updated_at) "
                "VALUES (?, 0, ?, ?) ON CONFLICT (name) DO UPDATE SET position = 0, "
                "version = excluded.version, updated_at = excluded.updated_at",
                (name, projection.version, _now(tx)),
            )
        # Every key is new until this rebuild writes it: rows go straight in (COPY on
        # Postgres) and lookups of unseen keys skip the database.
        try:
            return self._catch_up_one(name, self.rebuild_batch_size, known_new=set())
        finally:
            with self.read.transaction() as tx:
                for table in projection.tables:
                    for stmt in table.index_ddl():
                        tx.execute(stmt)

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
                if not any(self.process_batch(n) for n in targets):
                    time.sleep(0.02)
                continue
            with self._progress:
                self._progress.wait(timeout=min(remaining, 0.05))

    # -- background loop ----------------------------------------------------------------

    def step(self) -> int:
        return sum(abs(self.process_batch(n)) for n in self.projections)


def _now(tx: Tx) -> Any:
    now = datetime.now(UTC)
    return now.isoformat() if tx.dialect == "sqlite" else now
