"""A small expiring key-value table in the read database.

Backs browser sessions (and later other short-lived shared state) so that every API
replica sees the same data: the embedded SQLite file, or PostgreSQL in production.
"""

from __future__ import annotations

import time
from typing import Any

from backline.projections.db import Column, Index, ReadStore, Table

KV = Table(
    name="kv_store",
    columns=(
        Column("namespace", "text", nullable=False),
        Column("key", "text", nullable=False),
        Column("value", "bytes", nullable=False),
        Column("expires_at", "float"),
    ),
    primary_key=("namespace", "key"),
    indexes=(Index("kv_store_expiry", ("expires_at",)),),
)


class KeyValueTable:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def setup(self) -> None:
        with self.read.transaction() as tx:
            for stmt in KV.ddl(tx.dialect):
                tx.execute(stmt)

    def set(self, namespace: str, key: str, value: bytes, expires_in: float | None) -> None:
        expires_at = time.time() + expires_in if expires_in else None
        with self.read.transaction() as tx:
            tx.execute(
                KV.upsert_sql(),
                tx.encode_row(
                    KV,
                    {
                        "namespace": namespace,
                        "key": key,
                        "value": value,
                        "expires_at": expires_at,
                    },
                ),
            )

    def get(self, namespace: str, key: str, renew_for: float | None = None) -> bytes | None:
        now = time.time()
        with self.read.transaction(write=renew_for is not None) as tx:
            row = tx.fetchone(
                "SELECT value, expires_at FROM kv_store WHERE namespace = ? AND key = ?",
                (namespace, key),
            )
            if row is None:
                return None
            value, expires_at = row
            if expires_at is not None and expires_at <= now:
                return None
            if renew_for is not None and expires_at is not None:
                tx.execute(
                    "UPDATE kv_store SET expires_at = ? WHERE namespace = ? AND key = ?",
                    (now + renew_for, namespace, key),
                )
        return bytes(value)

    def delete(self, namespace: str, key: str) -> None:
        with self.read.transaction() as tx:
            tx.execute("DELETE FROM kv_store WHERE namespace = ? AND key = ?", (namespace, key))

    def delete_all(self, namespace: str) -> None:
        with self.read.transaction() as tx:
            tx.execute("DELETE FROM kv_store WHERE namespace = ?", (namespace,))

    def expires_in(self, namespace: str, key: str) -> int | None:
        with self.read.read() as tx:
            row = tx.fetchone(
                "SELECT expires_at FROM kv_store WHERE namespace = ? AND key = ?", (namespace, key)
            )
        if row is None or row[0] is None:
            return None
        return max(0, int(row[0] - time.time()))

    def purge_expired(self) -> int:
        with self.read.transaction() as tx:
            cur: Any = tx.execute(
                "DELETE FROM kv_store WHERE expires_at IS NOT NULL AND expires_at < ?",
                (time.time(),),
            )
            return int(getattr(cur, "rowcount", 0) or 0)
