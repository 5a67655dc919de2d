"""Principal resolution for the HTTP edge (session cookie now; bearer and keys extend it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from litestar import Request

from backline.api.deps import Services
from backline.application.sessions import Session
from backline.domain.errors import Unauthorized

SESSION_COOKIE = "backline_session"


@dataclass(frozen=True)
class Principal:
    account_id: UUID
    via: Literal["session", "bearer", "key"]
    session: Session | None = None
    scopes: frozenset[str] = frozenset()


def services(request: Request[Any, Any, Any]) -> Services:
    svc: Services = request.app.state.services
    return svc


def session_principal(request: Request[Any, Any, Any]) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    session = services(request).sessions.load(token)
    if session is None:
        return None
    return Principal(account_id=session.account_id, via="session", session=session)


def require_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = session_principal(request)
    if principal is None:
        raise Unauthorized("Sign in first.", code="unauthorized")
    return principal
