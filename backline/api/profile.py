"""``GET /api/profile`` (seed 001 shape), for a signed-in user."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get

from backline.api.auth import Principal, require_principal, services
from backline.api.deps import ApiConfig, Services
from backline.api.forms import in_thread
from backline.api.signing import signed_avatar_url
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


def profile_response(
    svc: Services, config: ApiConfig | None, principal: Principal
) -> ProfileResponse:
    """The profile (REST and the ``get_profile`` tool), avatar URL signed and expiring."""
    if principal.session is not None:
        svc.runner.wait_for(principal.session.position, ["profiles"], timeout=5.0)
    row = svc.profiles.get(principal.account_id)
    if row is None:
        # The projection lags (a bearer token carries no read-your-writes position, e.g.
        # right after create_account): read the aggregate instead (never for listing).
        try:
            account = svc.accounts.get(principal.account_id)
        except NotFound:
            raise NotFound("Profile not found.", code="profile_not_found") from None
        row = {
            "email": account.email,
            "first_name": account.first_name,
            "last_name": account.last_name,
            "avatar_url": account.avatar_url,
            "is_patron": account.is_patron,
            "is_admin": account.is_admin,
            "created_at": account.created_on,
        }
    body = profile_body(row, principal.account_id)
    if config is not None:
        body.profile.avatar_url = signed_avatar_url(
            config.secret_key, config.public_url, body.profile.avatar_url
        )
    return body


def load_profile(request: Request[Any, Any, Any], principal: Principal) -> ProfileResponse:
    return profile_response(services(request), request.app.state.api_config, principal)


class ProfileController(Controller):
    path = "/api"
    tags = ["Profile"]

    @get("/profile", summary="The signed-in user's profile")
    async def get_profile(self, request: Request[Any, Any, Any]) -> ProfileResponse:
        principal = await in_thread(require_principal, request)
        return await in_thread(load_profile, request, principal)
