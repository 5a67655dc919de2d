"""Principal resolution for the HTTP edge: session cookie, OAuth bearer token, API key.

* ``Authorization: Bearer blat_…`` — an OAuth access token (scope ``once:mcp``) whose
  audience (RFC 8707) is this resource server; accepted on every bearer/session route.
* ``Authorization: Bearer isrc_live_…`` — a workspace API key (seed 002); accepted only
  on ``/api/v1/*``.
* otherwise the ``backline_session`` cookie.

A presented but bad credential is a 401 (never a silent fall-back to the cookie). The
401 carries ``WWW-Authenticate: Bearer resource_metadata="…"`` (RFC 9728) so MCP clients
can discover the authorization server. The resolved principal is cached on the request
scope, so middleware (rate limiting) and handlers resolve it once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

import structlog
from litestar import Request

from backline.api.deps import ApiConfig, Services
from backline.application.sessions import Session
from backline.domain.api_keys import KEY_PREFIX
from backline.domain.errors import Forbidden, Unauthorized

SESSION_COOKIE = "backline_session"
MCP_SCOPE = "once:mcp"
KEY_PATH_PREFIX = "/api/v1/"
_CACHE = "principal"


@dataclass(frozen=True)
class Principal:
    account_id: UUID
    via: Literal["session", "bearer", "key"]
    session: Session | None = None
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None  # OAuth client (bearer) or API key id (key)


def services(request: Request[Any, Any, Any]) -> Services:
    svc: Services = request.app.state.services
    return svc


def api_config(request: Request[Any, Any, Any]) -> ApiConfig:
    config: ApiConfig = request.app.state.api_config
    return config


def resource_metadata_url(config: ApiConfig) -> str:
    return f"{config.public_url}/.well-known/oauth-protected-resource/api/mcp"


def accepted_audiences(config: ApiConfig) -> frozenset[str]:
    """Resource indicators that name this server (the MCP URL is canonical)."""
    return frozenset({config.mcp_url, config.public_url, config.public_url + "/"})


def challenge(config: ApiConfig, error: str | None = None, description: str | None = None) -> str:
    parts = [f'resource_metadata="{resource_metadata_url(config)}"']
    if error:
        parts.append(f'error="{error}"')
    if description:
        parts.append(f'error_description="{description}"')
    parts.append(f'scope="{MCP_SCOPE}"')
    return "Bearer " + ", ".join(parts)


def _unauthorized(
    config: ApiConfig, message: str, code: str, error: str | None = None
) -> Unauthorized:
    exc = Unauthorized(message, code=code)
    exc.headers = {"WWW-Authenticate": challenge(config, error, message if error else None)}  # type: ignore[attr-defined]
    return exc


def bearer_token(request: Request[Any, Any, Any]) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip() or None


def session_principal(request: Request[Any, Any, Any]) -> Principal | None:
    token = request.cookies.get(SESSION_COOKIE)
    session = services(request).sessions.load(token)
    if session is None:
        return None
    return Principal(account_id=session.account_id, via="session", session=session)


def token_principal(services_: Services, config: ApiConfig, token: str) -> Principal:
    """An OAuth access token → principal; typed 401/403 otherwise."""
    info = services_.oauth.authenticate_access(token)
    if info is None:
        raise _unauthorized(
            config,
            "The access token is invalid, expired or revoked.",
            "invalid_token",
            "invalid_token",
        )
    if info.audience not in accepted_audiences(config):
        raise _unauthorized(
            config,
            "The access token was issued for another resource.",
            "invalid_token",
            "invalid_token",
        )
    if MCP_SCOPE not in info.scopes:
        exc = Forbidden("The access token lacks the once:mcp scope.", code="insufficient_scope")
        exc.headers = {"WWW-Authenticate": challenge(config, "insufficient_scope")}  # type: ignore[attr-defined]
        raise exc
    return Principal(
        account_id=info.account_id, via="bearer", scopes=info.scopes, client_id=info.client_id
    )


def key_principal(services_: Services, config: ApiConfig, raw: str) -> Principal:
    key = services_.api_keys.authenticate(raw)
    if key is None:
        raise Unauthorized("The API key is missing, invalid or revoked.", code="invalid_api_key")
    return Principal(
        account_id=key.account_id, via="key", scopes=frozenset({"api:v1"}), client_id=str(key.id)
    )


def resolve_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """Whoever the request authenticates as (cached on the scope), or None."""
    state = request.scope.setdefault("state", {})
    if _CACHE in state:
        cached: Principal | None = state[_CACHE]
        return cached
    svc, config = services(request), api_config(request)
    token = bearer_token(request)
    principal: Principal | None
    if token is None:
        principal = session_principal(request)
    elif token.startswith(KEY_PREFIX):
        if not request.url.path.startswith(KEY_PATH_PREFIX):
            raise Unauthorized(
                "Workspace API keys authenticate /api/v1/* only.", code="invalid_token"
            )
        principal = key_principal(svc, config, token)
    else:
        principal = token_principal(svc, config, token)
    state[_CACHE] = principal
    if principal is not None:
        # Every later log line of this request names who it acts for (never a secret).
        structlog.contextvars.bind_contextvars(
            principal=str(principal.account_id), auth=principal.via
        )
    return principal


def require_principal(request: Request[Any, Any, Any]) -> Principal:
    principal = resolve_principal(request)
    if principal is None:
        raise _unauthorized(api_config(request), "Sign in first.", "unauthorized")
    return principal


def require_api_key(request: Request[Any, Any, Any]) -> Principal:
    """For ``/api/v1/*`` routes: only a workspace API key (seed 002) is accepted."""
    principal = resolve_principal(request)
    if principal is None or principal.via != "key":
        raise Unauthorized(
            "Send a workspace API key: Authorization: Bearer isrc_live_…", code="invalid_api_key"
        )
    return principal
