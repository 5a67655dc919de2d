"""A ``limits`` storage over the read database, so every API replica shares counters.

The embedded default keeps the counters in the SQLite file next to the read models (no
server needed); on PostgreSQL every replica and worker process sees the same rows.
Each ``incr`` is one atomic upsert (``INSERT .. ON CONFLICT .. RETURNING``), so two
processes racing on one key never lose a hit. Used with limits' fixed-window strategy.
"""

from __future__ import annotations

import random
import sqlite3
import time
from typing import Any

import psycopg
from limits.storage import Storage

from backline.projections.db import Column, Index, ReadStore, Table

RATE_LIMITS = Table(
    name="rate_limits",
    columns=(
        Column("key", "text", nullable=False),
        Column("hits", "int", nullable=False),
        Column("expires_at", "float", nullable=False),
    ),
    primary_key=("key",),
    indexes=(Index("rate_limits_expiry", ("expires_at",)),),
)

_INCR = (
    "INSERT INTO rate_limits (key, hits, expires_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET "
    "hits = CASE WHEN rate_limits.expires_at <= ? THEN excluded.hits "
    "ELSE rate_limits.hits + excluded.hits END, "
    "expires_at = CASE WHEN rate_limits.expires_at <= ? THEN excluded.expires_at "
    "ELSE rate_limits.expires_at END "
    "RETURNING hits"
)


class SqlRateLimitStorage(Storage):
    """``limits`` storage backed by the ``rate_limits`` table of the read database."""

    STORAGE_SCHEME = ["backline-sql"]

    def __init__(self, read: ReadStore, **options: Any) -> None:
        super().__init__(None, **options)
        self.read = read

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return (sqlite3.Error, psycopg.Error)

    def setup(self) -> None:
        with self.read.transaction() as tx:
            for stmt in RATE_LIMITS.ddl(tx.dialect):
                tx.execute(stmt)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        # One atomic upsert, in autocommit on PostgreSQL (one round trip).
        row = self.read.single(_INCR, (key, amount, now + expiry, now, now))
        if random.random() < 0.001:
            self.read.single("DELETE FROM rate_limits WHERE expires_at < ?", (now,))
        return int(row[0]) if row else amount

    def get(self, key: str) -> int:
        with self.read.read() as tx:
            row = tx.fetchone(
                "SELECT hits FROM rate_limits WHERE key = ? AND expires_at > ?", (key, time.time())
            )
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        with self.read.read() as tx:
            row = tx.fetchone(
                "SELECT expires_at FROM rate_limits WHERE key = ? AND expires_at > ?", (key, now)
            )
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            with self.read.read() as tx:
                tx.fetchone("SELECT 1")
            return True
        except Exception:
            return False

    def reset(self) -> int | None:
        with self.read.transaction() as tx:
            cur: Any = tx.execute("DELETE FROM rate_limits")
            return int(getattr(cur, "rowcount", 0) or 0)

    def clear(self, key: str) -> None:
        with self.read.transaction() as tx:
            tx.execute("DELETE FROM rate_limits WHERE key = ?", (key,))
