"""Read models for listing OAuth clients (operators) and a workspace's API keys.

Listing only: deciding whether a token or key is valid always loads the aggregate.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from backline.domain.api_keys import ApiKey
from backline.domain.oauth import OAuthClient
from backline.projections.db import Column, Index, ReadStore, Table
from backline.projections.framework import Batch, Projection, handles

OAUTH_CLIENTS = Table(
    name="oauth_clients",
    columns=(
        Column("client_id", "text", nullable=False),
        Column("client_name", "text"),
        Column("redirect_uris", "json"),
        Column("scope", "text"),
        Column("revoked", "bool"),
        Column("created_at", "timestamp"),
    ),
    primary_key=("client_id",),
)

API_KEYS = Table(
    name="api_keys",
    columns=(
        Column("id", "text", nullable=False),
        Column("account_id", "text", nullable=False),
        Column("name", "text"),
        Column("hint", "text"),
        Column("created_at", "timestamp"),
        Column("rotated_at", "timestamp"),
        Column("revoked_at", "timestamp"),
    ),
    primary_key=("id",),
    indexes=(Index("api_keys_account", ("account_id",)),),
)


class CredentialsProjection(Projection):
    name = "credentials"
    version = 1
    tables = (OAUTH_CLIENTS, API_KEYS)

    @handles(OAuthClient.Registered)
    def client_registered(self, batch: Batch, e: Any) -> None:
        batch.put(
            "oauth_clients",
            {
                "client_id": e.client_id,
                "client_name": e.client_name,
                "redirect_uris": list(e.redirect_uris),
                "scope": e.scope,
                "revoked": False,
                "created_at": e.timestamp,
            },
        )

    @handles(OAuthClient.Revoked)
    def client_revoked(self, batch: Batch, e: Any) -> None:
        batch.patch("oauth_clients", e.client_id, revoked=True)

    @handles(ApiKey.Issued)
    def key_issued(self, batch: Batch, e: Any) -> None:
        batch.put(
            "api_keys",
            {
                "id": str(e.originator_id),
                "account_id": str(e.account_id),
                "name": e.name,
                "hint": e.hint,
                "created_at": e.timestamp,
                "rotated_at": None,
                "revoked_at": None,
            },
        )

    @handles(ApiKey.Rotated)
    def key_rotated(self, batch: Batch, e: Any) -> None:
        batch.patch("api_keys", str(e.originator_id), hint=e.hint, rotated_at=e.timestamp)

    @handles(ApiKey.Revoked)
    def key_revoked(self, batch: Batch, e: Any) -> None:
        batch.patch("api_keys", str(e.originator_id), revoked_at=e.timestamp)


class CredentialQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def clients(self, limit: int = 1000) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                OAUTH_CLIENTS, tail="ORDER BY created_at LIMIT ?", params=(limit,)
            )

    def keys(self, account_id: UUID) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                API_KEYS,
                where="account_id = ?",
                params=(str(account_id),),
                tail="ORDER BY created_at",
            )
