"""Account tools: first-party ``create_account`` / ``password_authorize`` and ``get_profile``.

The first-party tools (seed 001) are unauthenticated but only for allowlisted client ids
(``BACKLINE_FIRST_PARTY_CLIENT_IDS``; the client must also be registered, with the
redirect URI), require PKCE S256, are rate limited by IP and by client id, and return a
short-lived one-shot ``authorization_code`` for ``/oauth/token``. The provenance
(``AIMD``/``MCP``) is recorded on the account and sign-in events they cause.
"""

from __future__ import annotations

from typing import Any

import msgspec

from backline.api.mcp.registry import ToolContext, tool
from backline.api.profile import ProfileResponse, profile_response
from backline.api.ratelimit import enforce
from backline.domain.errors import DomainError, Unauthorized, ValidationFailed
from backline.domain.oauth import check_pkce_challenge, normalize_scope


class CreateAccountInput(msgspec.Struct, kw_only=True):
    email: str
    password: str
    client_id: str
    redirect_uri: str
    code_challenge: str = ""
    code_challenge_method: str = ""
    first_name: str = ""
    last_name: str = ""
    scope: str = "once:mcp"
    provenance: str = ""


class PasswordAuthorizeInput(msgspec.Struct, kw_only=True):
    email: str
    password: str
    client_id: str
    redirect_uri: str
    code_challenge: str = ""
    code_challenge_method: str = ""
    scope: str = "once:mcp"
    provenance: str = ""


class AuthorizationCodeOutput(msgspec.Struct):
    userId: str
    email: str
    authorization_code: str


class NoArguments(msgspec.Struct):
    pass


class InvalidClient(Unauthorized):
    code = "invalid_client"


def _first_party_checks(ctx: ToolContext, args: Any) -> str:
    """Rate limit, allowlist, redirect URI, PKCE, scope; returns the normalised scope."""
    config = ctx.config
    assert config is not None
    limits = ctx.services.rate_limits
    enforce(limits, config.rate_limit_first_party, "first_party", f"ip:{ctx.client_ip}")
    enforce(limits, config.rate_limit_first_party, "first_party", f"client:{args.client_id}")
    if args.client_id not in config.first_party_client_ids:
        raise InvalidClient("This client may not use first-party account tools.")
    client = ctx.services.oauth.get_client(args.client_id)
    if client is None:
        raise InvalidClient("Unknown client_id.")
    if not client.accepts_redirect(args.redirect_uri):
        raise InvalidClient("redirect_uri is not registered for this client.")
    check_pkce_challenge(args.code_challenge, args.code_challenge_method)
    try:
        return normalize_scope(args.scope)
    except DomainError as e:
        raise ValidationFailed(e.message, code="invalid_scope") from None


def _issue(ctx: ToolContext, args: Any, account_id: Any, email: str, scope: str) -> Any:
    config = ctx.config
    assert config is not None
    oauth = ctx.services.oauth
    code = oauth.issue_code(
        client_id=args.client_id,
        account_id=account_id,
        redirect_uri=args.redirect_uri,
        scope=scope,
        code_challenge=args.code_challenge,
        audience=config.mcp_url,
        provenance=ctx.provenance,
        ttl=oauth.policy.first_party_code_ttl,
    )
    return AuthorizationCodeOutput(userId=str(account_id), email=email, authorization_code=code)


@tool(
    "create_account",
    "Create a Backline account for an allowlisted first-party client and return a "
    "PKCE-bound, one-shot authorization_code to exchange at /oauth/token.",
    input=CreateAccountInput,
    output=AuthorizationCodeOutput,
    auth=False,
)
def create_account(ctx: ToolContext, args: CreateAccountInput) -> AuthorizationCodeOutput:
    scope = _first_party_checks(ctx, args)
    result = ctx.services.accounts.register(
        args.email, args.password, args.first_name, args.last_name, provenance=ctx.provenance
    )
    out: AuthorizationCodeOutput = _issue(ctx, args, result.account_id, result.email, scope)
    return out


@tool(
    "password_authorize",
    "Sign an existing Backline account in for an allowlisted first-party client and return "
    "a PKCE-bound, one-shot authorization_code to exchange at /oauth/token.",
    input=PasswordAuthorizeInput,
    output=AuthorizationCodeOutput,
    auth=False,
)
def password_authorize(ctx: ToolContext, args: PasswordAuthorizeInput) -> AuthorizationCodeOutput:
    scope = _first_party_checks(ctx, args)
    result = ctx.services.accounts.authenticate(
        args.email, args.password, provenance=ctx.provenance
    )
    account = ctx.services.accounts.get(result.account_id)
    out: AuthorizationCodeOutput = _issue(ctx, args, result.account_id, account.email, scope)
    return out


@tool(
    "get_profile",
    "The signed-in user's profile: id, email, name, signed avatar URL, patron and admin "
    "flags. Mirrors GET /api/profile.",
    input=NoArguments,
    output=ProfileResponse,
    read_only=True,
)
def get_profile(ctx: ToolContext, args: NoArguments) -> ProfileResponse:
    return profile_response(ctx.services, ctx.config, ctx.require_principal())
