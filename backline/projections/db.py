"""Read-model storage: one small SQL layer over SQLite (embedded) and PostgreSQL.

Projections declare :class:`Table` specs and write portable SQL with ``?``
placeholders; this module turns them into each dialect's DDL and parameter style.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any, Literal

import msgspec

Dialect = Literal["sqlite", "postgres"]
ColumnType = Literal["text", "int", "bool", "float", "json", "timestamp", "bytes"]

_SQL_TYPES: dict[Dialect, dict[ColumnType, str]] = {
    "sqlite": {
        "text": "TEXT",
        "int": "INTEGER",
        "bool": "INTEGER",
        "float": "REAL",
        "json": "TEXT",
        "timestamp": "TEXT",
        "bytes": "BLOB",
    },
    "postgres": {
        "text": "TEXT",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "float": "DOUBLE PRECISION",
        "json": "JSONB",
        "timestamp": "TIMESTAMPTZ",
        "bytes": "BYTEA",
    },
}


_PG_COPY_TYPES: dict[ColumnType, str] = {
    "text": "text",
    "int": "int8",
    "bool": "bool",
    "float": "float8",
    "json": "jsonb",
    "timestamp": "timestamptz",
    "bytes": "bytea",
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType = "text"
    nullable: bool = True


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class Table:
    """A read-model table: columns, primary key, secondary indexes."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...] = ()
    column_names: tuple[str, ...] = field(init=False)
    getter: Any = field(init=False, repr=False, compare=False)
    width: int = field(init=False, repr=False)
    key_getter: Any = field(init=False, repr=False, compare=False)
    convert_pg: tuple[tuple[int, ColumnType], ...] = field(init=False, repr=False)
    convert_sqlite: tuple[tuple[int, ColumnType], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(c.name for c in self.columns)
        object.__setattr__(self, "column_names", names)
        object.__setattr__(self, "width", len(names))
        getter = itemgetter(*names)
        # itemgetter of one name returns a scalar; rows are always tuples.
        object.__setattr__(
            self, "getter", getter if len(names) > 1 else (lambda row: (getter(row),))
        )
        key_getter = itemgetter(*self.primary_key)
        object.__setattr__(
            self,
            "key_getter",
            key_getter if len(self.primary_key) > 1 else (lambda row: (key_getter(row),)),
        )
        object.__setattr__(
            self,
            "convert_pg",
            tuple((i, c.type) for i, c in enumerate(self.columns) if c.type == "json"),
        )
        object.__setattr__(
            self,
            "convert_sqlite",
            tuple(
                (i, c.type)
                for i, c in enumerate(self.columns)
                if c.type in ("json", "timestamp")  # sqlite3 stores bool as 0/1 itself
            ),
        )

    def ddl(self, dialect: Dialect, *, indexes: bool = True) -> list[str]:
        types = _SQL_TYPES[dialect]
        cols = ", ".join(
            f"{c.name} {types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in self.columns
        )
        stmts = [
            f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, "
            f"PRIMARY KEY ({', '.join(self.primary_key)}))"
        ]
        return stmts + self.index_ddl() if indexes else stmts

    def index_ddl(self) -> list[str]:
        stmts = []
        for ix in self.indexes:
            unique = "UNIQUE " if ix.unique else ""
            stmts.append(
                f"CREATE {unique}INDEX IF NOT EXISTS {ix.name} ON {self.name} "
                f"({', '.join(ix.columns)})"
            )
        return stmts

    def pg_types(self) -> list[str]:
        return [_PG_COPY_TYPES[c.type] for c in self.columns]

    def drop(self) -> str:
        return f"DROP TABLE IF EXISTS {self.name}"

    def key(self, row: dict[str, Any]) -> tuple[Any, ...]:
        key: tuple[Any, ...] = self.key_getter(row)
        return key

    def upsert_sql(self) -> str:
        cols = ", ".join(self.column_names)
        marks = ", ".join("?" for _ in self.columns)
        updates = [c for c in self.column_names if c not in self.primary_key]
        conflict = ", ".join(self.primary_key)
        if not updates:
            return f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING"
        sets = ", ".join(f"{c} = excluded.{c}" for c in updates)
        return (
            f"INSERT INTO {self.name} ({cols}) VALUES ({marks}) "
            f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
        )

    def delete_sql(self) -> str:
        where = " AND ".join(f"{k} = ?" for k in self.primary_key)
        return f"DELETE FROM {self.name} WHERE {where}"

    def select_sql(self) -> str:
        where = " AND ".join(f"{k} = ?" for k in self.primary_key)
        return f"SELECT {', '.join(self.column_names)} FROM {self.name} WHERE {where}"


def _to_sqlite(value: Any, type_: ColumnType) -> Any:
    if value is None:
        return None
    if type_ == "json":
        return msgspec.json.encode(value).decode()
    if type_ == "timestamp" and isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.isoformat()
    return value


def _to_postgres(value: Any, type_: ColumnType) -> Any:
    if value is None:
        return None
    if type_ == "json":
        from psycopg.types.json import Jsonb

        return Jsonb(value, dumps=lambda v: msgspec.json.encode(v).decode())
    return value


def _from_sqlite(value: Any, type_: ColumnType) -> Any:
    if value is None:
        return None
    if type_ == "bool":
        return bool(value)
    if type_ == "json":
        return msgspec.json.decode(value)
    if type_ == "timestamp":
        return datetime.fromisoformat(value)
    return value


@lru_cache(maxsize=2048)
def _pg_sql(sql: str) -> str:
    # Portable SQL uses '?' placeholders; psycopg wants '%s' (and literal '%' doubled).
    return sql.replace("%", "%%").replace("?", "%s")


class Tx:
    """A transaction handle: portable execute/fetch with '?' placeholders."""

    def __init__(self, conn: Any, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return _pg_sql(sql) if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgres":
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self.conn.executemany(sql, rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.execute(sql, params).fetchall()]

    # -- typed row helpers -------------------------------------------------------------

    def encode_row(self, table: Table, row: dict[str, Any]) -> tuple[Any, ...]:
        values: tuple[Any, ...] = table.getter(row)
        converted = table.convert_pg if self.dialect == "postgres" else table.convert_sqlite
        if not converted:
            return values
        out = list(values)
        conv = _to_postgres if self.dialect == "postgres" else _to_sqlite
        for i, type_ in converted:
            out[i] = conv(out[i], type_)
        return tuple(out)

    def decode_row(self, table: Table, values: Sequence[Any]) -> dict[str, Any]:
        if self.dialect == "postgres":
            return dict(zip(table.column_names, values, strict=True))
        return {c.name: _from_sqlite(v, c.type) for c, v in zip(table.columns, values, strict=True)}

    def get_row(self, table: Table, key: Sequence[Any]) -> dict[str, Any] | None:
        values = self.fetchone(table.select_sql(), key)
        return self.decode_row(table, values) if values is not None else None

    def select_rows(
        self, table: Table, where: str = "", params: Sequence[Any] = (), tail: str = ""
    ) -> list[dict[str, Any]]:
        sql = f"SELECT {', '.join(table.column_names)} FROM {table.name}"
        if where:
            sql += f" WHERE {where}"
        if tail:
            sql += f" {tail}"
        return [self.decode_row(table, r) for r in self.fetchall(sql, params)]

    def insert_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Plain bulk insert of rows known not to exist (COPY on Postgres)."""
        cols = ", ".join(table.column_names)
        if self.dialect != "postgres":
            marks = ", ".join("?" for _ in table.columns)
            self.conn.executemany(f"INSERT INTO {table.name} ({cols}) VALUES ({marks})", rows)
            return
        with (
            self.conn.cursor(binary=True) as cur,
            cur.copy(f"COPY {table.name} ({cols}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(table.pg_types())
            for r in rows:
                copy.write_row(r)

    def copy_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Bulk upsert: COPY into a staging table, then one INSERT .. ON CONFLICT."""
        if self.dialect != "postgres" or len(rows) < 64:
            self.executemany(table.upsert_sql(), rows)
            return
        stage = f"_stage_{table.name}"
        self.conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name}) ON COMMIT DELETE ROWS"
        )
        cols = ", ".join(table.column_names)
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {stage} ({cols}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
            updates = [c for c in table.column_names if c not in table.primary_key]
            conflict = ", ".join(table.primary_key)
            action = (
                "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
                if updates
                else "DO NOTHING"
            )
            cur.execute(
                f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} "
                f"ON CONFLICT ({conflict}) {action}"
            )
            cur.execute(f"DELETE FROM {stage}")


class ReadStore:
    """Connections to the read-model database for one process."""

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        if url.startswith("sqlite"):
            self.dialect: Dialect = "sqlite"
            self.path = sqlite_path(url)
            self._local = threading.local()
            self._pool: Any = None
        elif url.startswith(("postgresql", "postgres")):
            from psycopg_pool import ConnectionPool

            self.dialect = "postgres"
            self.path = ""
            # Everything written here is derived from the event log (projections, with
            # their tracking position in the same transaction) or ephemeral (sessions,
            # rate-limit counters), so commits do not wait for the WAL flush: a crash can
            # lose the last fraction of a second of such commits, whole, never half of
            # one; projections then re-apply from their last surviving position. The
            # event store has its own pool and keeps fully durable commits.
            conninfo = postgres_conninfo(url)
            options = "-c synchronous_commit=off"
            extra = conninfo_options(conninfo)
            self._pool = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                open=True,
                kwargs={"autocommit": False, "options": f"{extra} {options}".strip()},
            )
        else:
            raise ValueError(f"Unsupported database URL: {url.split(':', 1)[0]}")

    def _sqlite_conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        if self.dialect == "sqlite":
            conn = self._sqlite_conn()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Tx(conn, "sqlite")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with self._pool.connection() as conn, conn.transaction():
                yield Tx(conn, "postgres")

    def single(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        """Run one statement as its own transaction; its first row (None without one).

        On PostgreSQL the statement runs in autocommit: one round trip instead of three
        (``BEGIN``, the statement, ``COMMIT``), with the same atomicity for one statement.
        """
        if self.dialect == "sqlite":
            with self.transaction() as tx:
                cur = tx.execute(sql, params)
                row = cur.fetchone()
            return tuple(row) if row is not None else None
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                cur = conn.execute(_pg_sql(sql), tuple(params))
                found = cur.fetchone() if cur.description is not None else None
            finally:
                with suppress(Exception):
                    conn.autocommit = False
        return tuple(found) if found is not None else None

    @contextmanager
    def read(self) -> Iterator[Tx]:
        with self.transaction(write=False) as tx:
            yield tx

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        conn = getattr(getattr(self, "_local", None), "conn", None)
        if conn is not None:
            conn.close()


def sqlite_path(url: str) -> str:
    """``sqlite:///relative.db`` / ``sqlite:////abs.db`` / ``sqlite:///:memory:``."""
    rest = url.split(":", 1)[1]
    if rest.startswith("///"):
        return rest[3:]
    if rest.startswith("//"):
        return rest[2:]
    return rest


def conninfo_options(conninfo: str) -> str:
    """The ``options`` a connection URL already carries (e.g. a search_path)."""
    from urllib.parse import parse_qs, urlparse

    return " ".join(parse_qs(urlparse(conninfo).query).get("options", []))


def postgres_conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)
