"""License payments read model: which payments are open (for the chain watcher) and
every issued license (for operators)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from backline.domain.licensing import License
from backline.projections.db import Column, Index, ReadStore, Table
from backline.projections.framework import Batch, Projection, handles

LICENSE_PAYMENTS = Table(
    name="license_payments",
    columns=(
        Column("payment_id", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("track_id", "int"),
        Column("license_type", "text"),
        Column("paying_wallet", "text"),
        Column("amount_units", "int"),
        Column("method", "text"),
        Column("tx_hash", "text"),
        Column("created_at", "timestamp"),
        Column("expires_at", "timestamp"),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("payment_id",),
    indexes=(Index("license_payments_status", ("status", "created_at")),),
)


class LicenseProjection(Projection):
    name = "licenses"
    version = 1
    tables = (LICENSE_PAYMENTS,)

    @handles(License.Requested)
    def requested(self, batch: Batch, e: Any) -> None:
        batch.put(
            "license_payments",
            {
                "payment_id": str(e.originator_id),
                "status": "awaiting_payment",
                "track_id": e.track_id,
                "license_type": e.license_type,
                "paying_wallet": e.paying_wallet,
                "amount_units": e.amount_units,
                "created_at": e.created_at,
                "expires_at": e.expires_at,
                "updated_at": e.timestamp,
            },
        )

    @handles(License.Paid)
    def paid(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "license_payments",
            str(e.originator_id),
            status="paid",
            method=e.method,
            tx_hash=e.tx_hash,
            updated_at=e.timestamp,
        )

    @handles(License.Issued)
    def issued(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "license_payments",
            str(e.originator_id),
            status="license_issued",
            updated_at=e.timestamp,
        )

    @handles(License.Expired)
    def expired(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "license_payments", str(e.originator_id), status="expired", updated_at=e.timestamp
        )


class LicenseQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def open_payment_ids(self, limit: int = 200) -> list[UUID]:
        with self.read.read() as tx:
            rows = tx.fetchall(
                "SELECT payment_id FROM license_payments WHERE status = ? "
                "ORDER BY created_at LIMIT ?",
                ("awaiting_payment", limit),
            )
        return [UUID(r[0]) for r in rows]

    def get(self, payment_id: UUID | str) -> dict[str, Any] | None:
        with self.read.read() as tx:
            return tx.get_row(LICENSE_PAYMENTS, (str(payment_id),))
