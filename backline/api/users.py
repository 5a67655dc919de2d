"""Browser sign-in routes (seed 003): server-rendered forms, session cookies, CSRF."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, delete, get, post, put
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_201_CREATED, HTTP_303_SEE_OTHER

from backline.api.auth import SESSION_COOKIE, services, session_principal
from backline.api.errors import status_for
from backline.api.forms import in_thread, is_json_request, read_fields, safe_next
from backline.api.profile import profile_body
from backline.domain.errors import DomainError, Unauthorized

REGISTER_FIELDS = {"email", "password", "first_name", "last_name", "next"}
LOGIN_FIELDS = {"email", "password", "next"}
SETTINGS_FIELDS = {"first_name", "last_name", "avatar_url", "current_password", "new_password"}


def _session_cookie(request: Request[Any, Any, Any], token: str, max_age: int) -> dict[str, Any]:
    secure = request.app.state.api_config.cookie_secure
    return {
        "key": SESSION_COOKIE,
        "value": token,
        "max_age": max_age,
        "httponly": True,
        "samesite": "lax",
        "secure": secure,
        "path": "/",
    }


def _page(template: str, status: int = 200, **context: Any) -> Template:
    context.setdefault("error", None)
    context.setdefault("notice", None)
    context.setdefault("signed_in", False)
    return Template(template_name=template, context=context, status_code=status)


class UsersController(Controller):
    path = "/users"
    tags = ["Sign-in"]

    @get("/register", summary="Registration form")
    async def register_form(
        self, request: Request[Any, Any, Any], next: FromQuery[str] = ""
    ) -> Template:
        return _page(
            "register.html",
            title="Create your account",
            next=safe_next(next, ""),
            email="",
            first_name="",
            last_name="",
        )

    @post("/register", summary="Submit registration", status_code=HTTP_303_SEE_OTHER)
    async def register(self, request: Request[Any, Any, Any]) -> Response[Any]:
        svc = services(request)
        as_json = is_json_request(request)
        fields: dict[str, str] = {}
        try:
            fields = await read_fields(request, REGISTER_FIELDS)
            result = await in_thread(
                svc.accounts.register,
                fields.get("email", ""),
                fields.get("password", ""),
                fields.get("first_name", ""),
                fields.get("last_name", ""),
            )
        except DomainError as e:
            if as_json:
                raise
            return _page(
                "register.html",
                status_for(e),
                title="Create your account",
                error=e.message,
                error_code=e.code,
                next=safe_next(fields.get("next"), ""),
                email=fields.get("email", ""),
                first_name=fields.get("first_name", ""),
                last_name=fields.get("last_name", ""),
            )
        session = await in_thread(svc.sessions.create, result.account_id, result.position)
        cookie = _session_cookie(request, session.token, svc.sessions.max_age)
        if as_json:
            response: Response[Any] = Response(
                {"userId": str(result.account_id), "email": result.email},
                status_code=HTTP_201_CREATED,
            )
        else:
            response = Redirect(
                safe_next(fields.get("next"), "/users/settings"), status_code=HTTP_303_SEE_OTHER
            )
        response.set_cookie(**cookie)
        return response

    @get("/log-in", summary="Login form")
    async def login_form(
        self, request: Request[Any, Any, Any], next: FromQuery[str] = ""
    ) -> Response[Any]:
        return _page("login.html", title="Sign in", next=safe_next(next, ""), email="")

    @post("/log-in", summary="Submit credentials", status_code=HTTP_303_SEE_OTHER)
    async def login(self, request: Request[Any, Any, Any]) -> Response[Any]:
        svc = services(request)
        as_json = is_json_request(request)
        fields: dict[str, str] = {}
        try:
            fields = await read_fields(request, LOGIN_FIELDS)
            result = await in_thread(
                svc.accounts.authenticate, fields.get("email", ""), fields.get("password", "")
            )
        except DomainError as e:
            if as_json:
                raise
            return _page(
                "login.html",
                status_for(e),
                title="Sign in",
                error=e.message,
                error_code=e.code,
                next=safe_next(fields.get("next"), ""),
                email=fields.get("email", ""),
            )
        # A fresh session on every sign-in (no fixation): the old one, if any, is destroyed.
        await in_thread(svc.sessions.destroy, request.cookies.get(SESSION_COOKIE))
        session = await in_thread(svc.sessions.create, result.account_id, result.position)
        cookie = _session_cookie(request, session.token, svc.sessions.max_age)
        if as_json:
            response: Response[Any] = Response({"userId": str(result.account_id)}, status_code=200)
        else:
            response = Redirect(
                safe_next(fields.get("next"), "/users/settings"), status_code=HTTP_303_SEE_OTHER
            )
        response.set_cookie(**cookie)
        return response

    @delete("/log-out", summary="Log out", status_code=200)
    async def logout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._logout(request, redirect=False)

    @post(
        "/log-out",
        summary="Log out (HTML form)",
        status_code=HTTP_303_SEE_OTHER,
        include_in_schema=False,
    )
    async def logout_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._logout(request, redirect=True)

    async def _logout(self, request: Request[Any, Any, Any], *, redirect: bool) -> Response[Any]:
        svc = services(request)
        await in_thread(svc.sessions.destroy, request.cookies.get(SESSION_COOKIE))
        response: Response[Any] = (
            Redirect("/users/log-in", status_code=HTTP_303_SEE_OTHER)
            if redirect and not is_json_request(request)
            else Response({"status": "logged_out"}, status_code=200)
        )
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @get("/settings", summary="User settings form")
    async def settings_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        principal = await in_thread(session_principal, request)
        if principal is None:
            return Redirect("/users/log-in?next=/users/settings", status_code=HTTP_303_SEE_OTHER)
        profile = await in_thread(self._profile, request, principal)
        return _page("settings.html", title="Settings", profile=profile, signed_in=True)

    @put("/settings", summary="Update settings")
    async def update_settings(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._update(request)

    @post("/settings", summary="Update settings (HTML form)", include_in_schema=False)
    async def update_settings_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await self._update(request)

    def _profile(self, request: Request[Any, Any, Any], principal: Any) -> dict[str, Any]:
        svc = services(request)
        if principal.session is not None:
            svc.runner.wait_for(principal.session.position, ["profiles"], timeout=5.0)
        profile = svc.profiles.get(principal.account_id)
        if profile is None:
            # The projection lags: fall back to the aggregate (never for listing).
            account = svc.accounts.get(principal.account_id)
            profile = {
                "email": account.email,
                "first_name": account.first_name,
                "last_name": account.last_name,
                "avatar_url": account.avatar_url,
            }
        return profile

    async def _update(self, request: Request[Any, Any, Any]) -> Response[Any]:
        svc = services(request)
        as_json = is_json_request(request)
        principal = await in_thread(session_principal, request)
        if principal is None:
            if as_json:
                raise Unauthorized("Sign in first.", code="unauthorized")
            return Redirect("/users/log-in?next=/users/settings", status_code=HTTP_303_SEE_OTHER)
        fields: dict[str, str] = {}
        try:
            fields = await read_fields(request, SETTINGS_FIELDS)
            position = await in_thread(
                svc.accounts.change_profile,
                principal.account_id,
                first_name=fields.get("first_name"),
                last_name=fields.get("last_name"),
                avatar_url=fields.get("avatar_url"),
            )
            if fields.get("new_password"):
                position = max(
                    position,
                    await in_thread(
                        svc.accounts.change_password,
                        principal.account_id,
                        fields.get("current_password", ""),
                        fields["new_password"],
                    ),
                )
        except DomainError as e:
            if as_json:
                raise
            profile = await in_thread(self._profile, request, principal)
            profile = {**profile, **{k: v for k, v in fields.items() if "password" not in k}}
            return _page(
                "settings.html",
                status_for(e),
                title="Settings",
                profile=profile,
                signed_in=True,
                error=e.message,
                error_code=e.code,
            )
        if principal.session is not None and position:
            await in_thread(svc.sessions.note_position, principal.session, position)
            await in_thread(svc.runner.wait_for, position, ["profiles"], 5.0)
        profile = await in_thread(self._profile, request, principal)
        if as_json:
            return Response(profile_body(profile, principal.account_id))
        return _page(
            "settings.html",
            title="Settings",
            profile=profile,
            signed_in=True,
            notice="Settings saved.",
        )
