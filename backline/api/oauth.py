"""OAuth 2.1 authorization server on authlib's generic ``AuthorizationServer``, in Litestar.

authlib ships no Litestar integration, so this module adapts it: Litestar requests are
read (async) into an :class:`OAuth2Request` and the synchronous authlib server runs off
the event loop, like every other use case. authlib's defaults are tightened:

* PKCE is **required** and **S256 only** (``plain`` and missing challenges refused, at
  the authorization endpoint and again at the token endpoint).
* Public clients only (``token_endpoint_auth_method: none``); unknown clients at the
  token endpoint get ``401 invalid_client``.
* RFC 8707 ``resource``: validated at ``/oauth/authorize`` and ``/oauth/token``, bound to
  the code and then to the token's audience, which ``/api/mcp`` checks.
* Codes are one-shot (optimistic concurrency on the code aggregate); reusing one revokes
  the tokens it produced. Refresh tokens rotate with a grace window and reuse detection
  (``domain/oauth.py``).

Dynamic client registration (RFC 7591), the metadata documents (RFC 8414, RFC 9728) and
revocation (RFC 7009) are small enough to be written here directly; authlib's RFC 7591
endpoint builds on ``authlib.jose``, which this project does not use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import msgspec
import structlog
from authlib.common.urls import add_params_to_uri
from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AccessDeniedError,
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    TokenMixin,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from litestar import MediaType, Request, Response, get, post
from litestar.response import Redirect, Template

from backline.api.auth import accepted_audiences, api_config, services, session_principal
from backline.api.deps import ApiConfig, Services
from backline.api.forms import in_thread
from backline.application.oauth import REFRESH_PREFIX, grant_id_of
from backline.domain.errors import DomainError, ValidationFailed
from backline.domain.oauth import (
    SUPPORTED_SCOPES,
    AuthorizationCode,
    Grant,
    OAuthClient,
    normalize_scope,
)

log = structlog.get_logger(__name__)

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The consent page must not be framed (clickjacking) nor cached.
CONSENT_HEADERS = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
OAUTH_PARAMS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "resource",
)


# -- metadata (RFC 8414, RFC 9728) ------------------------------------------------------------


def issuer(config: ApiConfig) -> str:
    return config.public_url


def authorization_server_metadata(config: ApiConfig) -> dict[str, Any]:
    base = config.public_url
    return {
        "issuer": issuer(config),
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "registration_endpoint": f"{base}/oauth/register",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": list(SUPPORTED_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "service_documentation": f"{base}/docs/api.md",
    }


def protected_resource_metadata(config: ApiConfig) -> dict[str, Any]:
    return {
        "resource": config.mcp_url,
        "authorization_servers": [issuer(config)],
        "scopes_supported": list(SUPPORTED_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": "Backline MCP",
    }


@get(
    ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/api/mcp"],
    tags=["OAuth"],
    summary="OAuth protected resource metadata (RFC 9728)",
)
async def protected_resource(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return protected_resource_metadata(api_config(request))


@get(
    ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"],
    tags=["OAuth"],
    summary="OAuth authorization server metadata (RFC 8414)",
)
async def authorization_server(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return authorization_server_metadata(api_config(request))


# -- authlib adaptation -------------------------------------------------------------------------


class InvalidTargetError(OAuth2Error):  # type: ignore[misc]
    """RFC 8707: the requested resource is not one this server issues tokens for."""

    error = "invalid_target"


class LitestarOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """An authlib request built from an already-read Litestar request."""

    def __init__(self, method: str, uri: str, headers: dict[str, str], data: dict[str, list[str]]):
        super().__init__(method=method, uri=uri, headers=headers)
        flat = {k: v[0] for k, v in data.items() if v}
        self.payload = BasicOAuth2Payload(flat)
        self.payload._datalist = {k: list(v) for k, v in data.items()}
        self._flat = flat
        self.audience: str = ""

    @property
    def args(self) -> dict[str, str]:
        return self._flat

    @property
    def form(self) -> dict[str, str]:
        return self._flat


class ClientModel(ClientMixin):  # type: ignore[misc]
    def __init__(self, client: OAuthClient) -> None:
        self.client = client
        self.client_id = client.client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.client.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return self.client.scope
        allowed = set(self.client.scope.split())
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.client.accepts_redirect(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.client.grant_types


class CodeModel(AuthorizationCodeMixin):  # type: ignore[misc]
    def __init__(self, code: AuthorizationCode) -> None:
        self.code = code
        self.code_challenge = code.code_challenge
        self.code_challenge_method = "S256"

    def get_redirect_uri(self) -> str:
        return self.code.redirect_uri

    def get_scope(self) -> str:
        return self.code.scope


class RefreshModel(TokenMixin):  # type: ignore[misc]
    def __init__(self, grant: Grant) -> None:
        self.grant = grant

    def check_client(self, client: ClientModel) -> bool:
        return bool(self.grant.client_id == client.client_id)

    def get_scope(self) -> str:
        return self.grant.scope


class S256Only(CodeChallenge):  # type: ignore[misc]
    """PKCE required, S256 only, at both endpoints (authlib allows plain and optional)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256.",
                redirect_uri=redirect_uri,
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "Only code_challenge_method=S256 is supported.", redirect_uri=redirect_uri
            )
        try:
            super().validate_code_challenge(grant, redirect_uri)
        except InvalidRequestError as e:
            e.redirect_uri = redirect_uri
            raise

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        if not grant.request.form.get("code_verifier"):
            raise InvalidRequestError("Missing 'code_verifier' (PKCE is required).")
        super().validate_code_verifier(grant, result)


def _check_resource(request: LitestarOAuth2Request, config: ApiConfig, redirect_uri: Any) -> str:
    resources = request.payload.datalist.get("resource", [])
    if len(resources) > 1:
        raise InvalidTargetError("Only one resource may be requested.", redirect_uri=redirect_uri)
    if not resources:
        return config.mcp_url
    if resources[0] not in accepted_audiences(config):
        raise InvalidTargetError(
            f"Unknown resource; this server issues tokens for {config.mcp_url}.",
            redirect_uri=redirect_uri,
        )
    return config.mcp_url


class CodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    @property
    def _server(self) -> BacklineAuthorizationServer:
        server: BacklineAuthorizationServer = self.server
        return server

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> Any:
        if not grant_user:
            raise AccessDeniedError(redirect_uri=redirect_uri)
        request: LitestarOAuth2Request = self.request
        audience = _check_resource(request, self._server.config, redirect_uri)
        code = self._server.services.oauth.issue_code(
            client_id=request.client.client_id,
            account_id=grant_user,
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or normalize_scope(None),
            code_challenge=request.payload.data["code_challenge"],
            audience=audience,
            provenance="MCP",
        )
        params = [("code", code)]
        if request.payload.state:
            params.append(("state", request.payload.state))
        return 302, "", [("Location", add_params_to_uri(redirect_uri, params))]

    def query_authorization_code(self, code: str, client: ClientModel) -> CodeModel | None:
        oauth = self._server.services.oauth
        found = oauth.find_code(code)
        if found is None or found.client_id != client.client_id:
            return None
        if found.redeemed:
            assert found.grant_id is not None
            oauth.revoke_grant(found.grant_id, "code_reused")
            log.warning("oauth_code_reused", client_id=client.client_id)
            return None
        if found.is_expired(oauth.clock()):
            return None
        return CodeModel(found)

    def create_token_response(self) -> Any:
        request: LitestarOAuth2Request = self.request
        code_model: CodeModel = request.authorization_code
        audience = _check_resource(request, self._server.config, None)
        if audience != code_model.code.audience:
            raise InvalidTargetError("resource does not match the authorization request.")
        try:
            tokens = self._server.services.oauth.exchange_code(
                request.form["code"], request.client.client_id
            )
        except DomainError as e:
            raise InvalidGrantError(e.message) from None
        body = tokens.as_response()
        if not request.client.check_grant_type("refresh_token"):
            body.pop("refresh_token", None)  # the client did not register for refreshes
        return 200, body, [*self.TOKEN_RESPONSE_HEADER]

    def save_authorization_code(self, code: str, request: Any) -> None:  # pragma: no cover
        raise NotImplementedError("codes are issued in create_authorization_response")

    def delete_authorization_code(self, authorization_code: Any) -> None:  # pragma: no cover
        """Redemption is the code aggregate's Redeemed event (exchange_code)."""

    def authenticate_user(self, authorization_code: Any) -> Any:  # pragma: no cover
        return authorization_code.code.account_id


class RefreshGrant(RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def _server(self) -> BacklineAuthorizationServer:
        server: BacklineAuthorizationServer = self.server
        return server

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshModel | None:
        grant_id = grant_id_of(refresh_token, REFRESH_PREFIX)
        if grant_id is None:
            return None
        grant = self._server.services.oauth.store.find(grant_id, Grant)
        return RefreshModel(grant) if grant is not None else None

    def create_token_response(self) -> Any:
        request: LitestarOAuth2Request = self.request
        model: RefreshModel = request.refresh_token
        audience = _check_resource(request, self._server.config, None)
        if audience != model.grant.audience:
            raise InvalidTargetError("resource does not match the original grant.")
        try:
            tokens = self._server.services.oauth.refresh(
                request.form["refresh_token"], request.client.client_id, request.payload.scope
            )
        except ValidationFailed as e:
            raise InvalidScopeError(e.message) from None
        except DomainError as e:
            raise InvalidGrantError(e.message) from None
        return 200, tokens.as_response(), [*self.TOKEN_RESPONSE_HEADER]

    def authenticate_user(self, refresh_token: Any) -> Any:  # pragma: no cover
        return refresh_token.grant.account_id

    def revoke_old_credential(self, refresh_token: Any) -> None:  # pragma: no cover
        """Rotation happens atomically inside OAuthService.refresh."""


class BacklineAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(self, services_: Services, config: ApiConfig) -> None:
        super().__init__(scopes_supported=list(SUPPORTED_SCOPES))
        self.services = services_
        self.config = config
        self.register_grant(CodeGrant, [S256Only(required=True)])
        self.register_grant(RefreshGrant)

    def query_client(self, client_id: str) -> ClientModel | None:
        client = self.services.oauth.get_client(client_id)
        return ClientModel(client) if client is not None else None

    def save_token(self, token: Any, request: Any) -> None:  # pragma: no cover
        raise NotImplementedError("tokens are saved by OAuthService")

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        assert isinstance(request, OAuth2Request)
        return request

    def create_json_request(self, request: Any) -> Any:  # pragma: no cover
        raise NotImplementedError

    def handle_response(
        self, status: int, body: Any, headers: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return status, body, dict(headers or [])

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Any:
        status, body, headers = super().handle_error_response(request, error)
        if error.error == "invalid_client" and request.uri.endswith("/oauth/token"):
            status = 401  # RFC 6749 §5.2: the client failed to authenticate
        return status, body, headers


def oauth_server(request: Request[Any, Any, Any]) -> BacklineAuthorizationServer:
    state = request.app.state
    server: BacklineAuthorizationServer | None = getattr(state, "oauth_server", None)
    if server is None:
        server = BacklineAuthorizationServer(services(request), api_config(request))
        state.oauth_server = server
    return server


async def read_oauth_request(request: Request[Any, Any, Any]) -> LitestarOAuth2Request:
    data: dict[str, list[str]] = {}
    if request.method == "GET":
        for key, value in request.query_params.multi_items():
            data.setdefault(key, []).append(value)
    else:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise _UnsupportedBody
        form = await request.form()
        for key, value in form.multi_items():
            if isinstance(value, str):
                data.setdefault(key, []).append(value)
    config = api_config(request)
    uri = config.public_url + request.url.path
    if not config.production and uri.startswith("http://"):
        # authlib refuses plain http off loopback (OAuth 2.1 requires TLS). Production
        # keeps that check; a development deployment on http (compose, LAN) may proceed.
        uri = "https://" + uri[len("http://") :]
    return LitestarOAuth2Request(request.method, uri, dict(request.headers), data)


class _UnsupportedBody(Exception):
    pass


def _oauth_json(status: int, body: Any, headers: dict[str, str]) -> Response[Any]:
    payload = dict(body) if isinstance(body, list | tuple) else body
    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    return Response(
        payload, status_code=status, media_type=MediaType.JSON, headers={**headers, **NO_STORE}
    )


def _invalid_body() -> Response[Any]:
    return _oauth_json(
        400,
        {
            "error": "invalid_request",
            "error_description": "Send application/x-www-form-urlencoded.",
        },
        {},
    )


# -- endpoints ---------------------------------------------------------------------------------


@post("/oauth/register", tags=["OAuth"], summary="Dynamic client registration (RFC 7591)")
async def register_client(request: Request[Any, Any, Any]) -> Response[Any]:
    body = await request.body()
    try:
        meta = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        meta = None
    if not isinstance(meta, dict):
        return _oauth_json(
            400,
            {
                "error": "invalid_client_metadata",
                "error_description": "Body must be a JSON object.",
            },
            {},
        )
    svc = services(request)
    try:
        client = await in_thread(
            svc.oauth.register_client,
            meta.get("redirect_uris"),
            meta.get("client_name"),
            meta.get("grant_types"),
            meta.get("scope"),
        )
    except DomainError as e:
        error = e.code if e.code == "invalid_redirect_uri" else "invalid_client_metadata"
        return _oauth_json(400, {"error": error, "error_description": e.message}, {})
    response: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.issued_at,
        "redirect_uris": list(client.redirect_uris),
        "grant_types": list(client.grant_types),
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": client.scope,
    }
    if client.client_name:
        response["client_name"] = client.client_name
    for extra in ("client_uri", "logo_uri", "software_id", "software_version"):
        value = meta.get(extra)
        if isinstance(value, str) and value and len(value) <= 500:
            response[extra] = value
    log.info("oauth_client_registered", client_id=client.client_id)
    return _oauth_json(201, response, {})


def _error_page(message: str, code: str, status: int = 400) -> Template:
    return Template(
        template_name="oauth_error.html",
        context={
            "title": "Authorization failed",
            "error": message,
            "error_code": code,
            "notice": None,
            "signed_in": False,
        },
        status_code=status,
    )


def _validate(server: BacklineAuthorizationServer, oauth_req: LitestarOAuth2Request) -> Any:
    grant = server.get_consent_grant(request=oauth_req, end_user=None)
    oauth_req.audience = _check_resource(oauth_req, server.config, grant.redirect_uri)
    return grant


async def _consent_or_error(
    request: Request[Any, Any, Any], oauth_req: LitestarOAuth2Request
) -> tuple[Any, Response[Any] | None]:
    server = oauth_server(request)
    try:
        grant = await in_thread(_validate, server, oauth_req)
    except OAuth2Error as error:
        error.state = oauth_req.payload.state
        status, _body, headers = server.handle_error_response(oauth_req, error)
        if status == 302 and "Location" in headers:
            return None, Redirect(headers["Location"], status_code=302)
        return None, _error_page(error.description or error.error, error.error)
    return grant, None


@get("/oauth/authorize", tags=["OAuth"], summary="Authorization endpoint (consent page)")
async def authorize_page(request: Request[Any, Any, Any]) -> Response[Any]:
    oauth_req = await read_oauth_request(request)
    grant, failure = await _consent_or_error(request, oauth_req)
    if failure is not None:
        return failure
    principal = await in_thread(session_principal, request)
    if principal is None:
        here = request.url.path + ("?" + request.url.query if request.url.query else "")
        return Redirect(f"/users/log-in?next={quote(here, safe='')}", status_code=303)
    client: ClientModel = grant.client
    scope = oauth_req.scope or client.client.scope
    params = [(k, oauth_req.payload.data[k]) for k in OAUTH_PARAMS if oauth_req.payload.data.get(k)]
    return Template(
        template_name="oauth_consent.html",
        context={
            "title": "Authorize access",
            "client_name": client.client.client_name or "An unnamed application",
            "client_id": client.client_id,
            "scopes": scope.split(),
            "redirect_uri": grant.redirect_uri,
            "params": params,
            "error": None,
            "notice": None,
            "signed_in": True,
        },
        headers=CONSENT_HEADERS,
    )


@post("/oauth/authorize", tags=["OAuth"], summary="Consent decision", status_code=302)
async def authorize_decision(request: Request[Any, Any, Any]) -> Response[Any]:
    try:
        oauth_req = await read_oauth_request(request)
    except _UnsupportedBody:
        return _error_page("Send the consent form.", "invalid_request")
    principal = await in_thread(session_principal, request)
    if principal is None:
        query = urlencode([(k, v) for k, v in oauth_req.form.items() if k in OAUTH_PARAMS])
        here = f"/oauth/authorize?{query}"
        return Redirect(f"/users/log-in?next={quote(here, safe='')}", status_code=303)
    grant, failure = await _consent_or_error(request, oauth_req)
    if failure is not None:
        return failure
    decision = oauth_req.form.get("decision")
    server = oauth_server(request)
    user = principal.account_id if decision == "allow" else None
    status, _body, headers = await in_thread(
        server.create_authorization_response, oauth_req, user, grant
    )
    if status == 302 and "Location" in headers:
        log.info("oauth_consent", client_id=oauth_req.payload.client_id, decision=decision)
        return Redirect(headers["Location"], status_code=302)
    return _error_page("Authorization failed.", "server_error", 500)


@post("/oauth/token", tags=["OAuth"], summary="Token endpoint (code + PKCE, refresh)")
async def token(request: Request[Any, Any, Any]) -> Response[Any]:
    try:
        oauth_req = await read_oauth_request(request)
    except _UnsupportedBody:
        return _invalid_body()
    server = oauth_server(request)
    status, body, headers = await in_thread(server.create_token_response, oauth_req)
    return _oauth_json(status, body, headers)


@post("/oauth/revoke", tags=["OAuth"], summary="Token revocation (RFC 7009)", status_code=200)
async def revoke(request: Request[Any, Any, Any]) -> Response[Any]:
    try:
        oauth_req = await read_oauth_request(request)
    except _UnsupportedBody:
        return _invalid_body()
    raw = oauth_req.form.get("token", "")
    client_id = oauth_req.form.get("client_id") or None
    if raw:
        await in_thread(services(request).oauth.revoke_token, raw, client_id)
    return _oauth_json(200, {}, {})


ROUTES = [
    protected_resource,
    authorization_server,
    register_client,
    authorize_page,
    authorize_decision,
    token,
    revoke,
]
