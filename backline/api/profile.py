"""``GET /api/profile`` (seed 001 shape), for a signed-in user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get

from backline.api.auth import Principal, require_principal, services
from backline.api.forms import in_thread
from backline.domain.errors import NotFound


class Profile(msgspec.Struct):
    id: str
    email: str
    first_name: str
    last_name: str
    created_at: str
    avatar_url: str | None
    is_patron: bool
    is_admin: bool


class ProfileResponse(msgspec.Struct):
    profile: Profile


def iso_ms(value: Any) -> str:
    """``2026-02-01T12:00:00.000Z`` as the seed shows timestamps."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return ""
    value = value.astimezone(UTC)
    stamp: str = value.strftime("%Y-%m-%dT%H:%M:%S.")
    return stamp + f"{value.microsecond // 1000:03d}Z"


def profile_body(row: dict[str, Any], account_id: UUID) -> ProfileResponse:
    return ProfileResponse(
        profile=Profile(
            id=str(account_id),
            email=row.get("email", ""),
            first_name=row.get("first_name") or "",
            last_name=row.get("last_name") or "",
            created_at=iso_ms(row.get("created_at")),
            avatar_url=row.get("avatar_url") or None,
            is_patron=bool(row.get("is_patron")),
            is_admin=bool(row.get("is_admin")),
        )
    )


def load_profile(request: Request[Any, Any, Any], principal: Principal) -> ProfileResponse:
    svc = services(request)
    if principal.session is not None:
        svc.runner.wait_for(principal.session.position, ["profiles"], timeout=5.0)
    row = svc.profiles.get(principal.account_id)
    if row is None:
        raise NotFound("Profile not found.", code="profile_not_found")
    return profile_body(row, principal.account_id)


class ProfileController(Controller):
    path = "/api"
    tags = ["Profile"]

    @get("/profile", summary="The signed-in user's profile")
    async def get_profile(self, request: Request[Any, Any, Any]) -> ProfileResponse:
        principal = await in_thread(require_principal, request)
        return await in_thread(load_profile, request, principal)
