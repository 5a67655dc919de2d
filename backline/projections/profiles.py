"""Profile read model: one row per account, for ``GET /api/profile`` and admin lists."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from backline.domain.account import Account
from backline.projections.db import Column, Index, ReadStore, Table
from backline.projections.framework import Batch, Projection, handles

PROFILES = Table(
    name="account_profiles",
    columns=(
        Column("id", "text", nullable=False),
        Column("email", "text", nullable=False),
        Column("first_name", "text"),
        Column("last_name", "text"),
        Column("avatar_url", "text"),
        Column("is_patron", "bool"),
        Column("is_admin", "bool"),
        Column("provenance", "text"),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("id",),
    indexes=(Index("account_profiles_email", ("email",)),),
)


class ProfileProjection(Projection):
    name = "profiles"
    version = 1
    tables = (PROFILES,)

    @handles(Account.Registered)
    def registered(self, batch: Batch, e: Any) -> None:
        batch.put(
            "account_profiles",
            {
                "id": str(e.originator_id),
                "email": e.email,
                "first_name": e.first_name,
                "last_name": e.last_name,
                "avatar_url": "",
                "is_patron": False,
                "is_admin": e.is_admin,
                "provenance": e.provenance,
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
            },
        )

    @handles(Account.ProfileChanged)
    def profile_changed(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "account_profiles",
            str(e.originator_id),
            first_name=e.first_name,
            last_name=e.last_name,
            avatar_url=e.avatar_url,
            updated_at=e.timestamp,
        )

    @handles(Account.EmailChanged)
    def email_changed(self, batch: Batch, e: Any) -> None:
        batch.patch("account_profiles", str(e.originator_id), email=e.email, updated_at=e.timestamp)

    @handles(Account.RolesChanged)
    def roles_changed(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "account_profiles",
            str(e.originator_id),
            is_admin=e.is_admin,
            is_patron=e.is_patron,
            updated_at=e.timestamp,
        )


class ProfileQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def get(self, account_id: UUID | str) -> dict[str, Any] | None:
        with self.read.read() as tx:
            return tx.get_row(PROFILES, (str(account_id),))

    def list(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                PROFILES, tail="ORDER BY created_at DESC LIMIT ? OFFSET ?", params=(limit, offset)
            )
