"""Workspace API key management (seed 002) and the key-authenticated ``/api/v1/me`` probe.

Routes (session + CSRF, or an OAuth bearer token):

* ``GET /api/keys`` — the workspace's keys (never the raw key; a hint ``isrc_live_…abcd``)
* ``POST /api/keys`` ``{"name"}`` → ``201`` with the raw ``key`` (shown once)
* ``POST /api/keys/{id}/rotate`` → a new raw ``key``; the old one stops at once
* ``DELETE /api/keys/{id}`` → revoked at once

``GET /api/v1/me`` answers ``{"data": {"workspace_id", "key_id"}}`` for a valid key: a
cheap way for an integration to check its key (and the rate-limit headers).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.params import FromPath
from litestar.status_codes import HTTP_201_CREATED

from backline.api.auth import require_api_key, require_principal, services
from backline.api.forms import in_thread, read_fields
from backline.application.api_keys import IssuedKey
from backline.domain.errors import NotFound


class ApiKeyInfo(msgspec.Struct):
    id: str
    name: str
    hint: str
    created_at: str
    rotated_at: str | None
    revoked: bool


class ApiKeyList(msgspec.Struct):
    data: list[ApiKeyInfo]


class IssuedApiKey(msgspec.Struct):
    id: str
    name: str
    key: str
    hint: str
    message: str = "Store this key now: it is shown once and cannot be recovered."


class MeData(msgspec.Struct):
    workspace_id: str
    key_id: str


class Me(msgspec.Struct):
    data: MeData


def _issued(key: IssuedKey) -> IssuedApiKey:
    return IssuedApiKey(id=str(key.key_id), name=key.name, key=key.key, hint=key.hint)


def _key_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("API key not found.", code="api_key_not_found") from None


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class ApiKeysController(Controller):
    path = "/api/keys"
    tags = ["API keys"]

    @get("/", summary="List the workspace's API keys")
    async def list_keys(self, request: Request[Any, Any, Any]) -> ApiKeyList:
        principal = await in_thread(require_principal, request)
        svc = services(request)
        if principal.session is not None:
            await in_thread(svc.runner.wait_for, principal.session.position, ["credentials"], 5.0)
        rows = await in_thread(svc.credentials.keys, principal.account_id)
        return ApiKeyList(
            data=[
                ApiKeyInfo(
                    id=r["id"],
                    name=r["name"],
                    hint=r["hint"],
                    created_at=_iso(r["created_at"]) or "",
                    rotated_at=_iso(r["rotated_at"]),
                    revoked=r["revoked_at"] is not None,
                )
                for r in rows
            ]
        )

    @post("/", summary="Create an API key (raw key shown once)", status_code=HTTP_201_CREATED)
    async def create_key(self, request: Request[Any, Any, Any]) -> IssuedApiKey:
        principal = await in_thread(require_principal, request)
        fields = await read_fields(request, {"name"})
        svc = services(request)
        issued = await in_thread(svc.api_keys.create, principal.account_id, fields.get("name"))
        await self._note(request, principal, issued.position)
        return _issued(issued)

    @post("/{key_id:str}/rotate", summary="Rotate an API key", status_code=200)
    async def rotate_key(
        self, request: Request[Any, Any, Any], key_id: FromPath[str]
    ) -> IssuedApiKey:
        principal = await in_thread(require_principal, request)
        svc = services(request)
        issued = await in_thread(svc.api_keys.rotate, principal.account_id, _key_id(key_id))
        await self._note(request, principal, issued.position)
        return _issued(issued)

    @delete("/{key_id:str}", summary="Revoke an API key", status_code=200)
    async def revoke_key(
        self, request: Request[Any, Any, Any], key_id: FromPath[str]
    ) -> dict[str, Any]:
        principal = await in_thread(require_principal, request)
        svc = services(request)
        position = await in_thread(svc.api_keys.revoke, principal.account_id, _key_id(key_id))
        await self._note(request, principal, position)
        return {"id": key_id, "revoked": True}

    async def _note(self, request: Request[Any, Any, Any], principal: Any, position: int) -> None:
        svc = services(request)
        if principal.session is not None and position:
            await in_thread(svc.sessions.note_position, principal.session, position)


@get("/api/v1/me", tags=["Developer API"], summary="The workspace the presented API key belongs to")
async def v1_me(request: Request[Any, Any, Any]) -> Me:
    principal = await in_thread(require_api_key, request)
    return Me(data=MeData(workspace_id=str(principal.account_id), key_id=principal.client_id or ""))
