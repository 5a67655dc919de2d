"""OAuth 2.1 use cases: client registration, codes, token grants, validation, revocation.

Token choice: **opaque** tokens, not signed JWTs. Backline is both the authorization
server and the only resource server, so self-contained tokens buy nothing (there is no
third party that must validate offline) and cost what matters here: a signed token
stays valid until it expires, whereas the issue requires revocation, refresh-reuse
family revocation and client revocation to take effect at once. An opaque token is
``blat_<grant id hex>_<256 random bits>`` (``blrt_`` for refresh tokens): the grant id
locates the :class:`~backline.domain.oauth.Grant` aggregate, which stores only SHA-256
hashes, and one aggregate load (strongly consistent, no projection lag) validates it.
No signing keys to rotate or leak; a leaked database yields no usable token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Repository

from backline.application.store import EventStore, retrying
from backline.domain.errors import Conflict, Unauthorized, ValidationFailed
from backline.domain.oauth import (
    GRANT_TYPES,
    MAX_CLIENT_NAME,
    MAX_REDIRECT_URIS,
    SUPPORTED_SCOPES,
    AuthorizationCode,
    Grant,
    OAuthClient,
    client_aggregate_id,
    code_aggregate_id,
    normalize_scope,
    secret_hash,
    validate_redirect_uri,
)

ACCESS_PREFIX = "blat_"
REFRESH_PREFIX = "blrt_"


@dataclass(frozen=True)
class OAuthPolicy:
    access_ttl: int = 3600
    refresh_ttl: int = 30 * 24 * 3600
    code_ttl: int = 300
    first_party_code_ttl: int = 60
    refresh_grace: float = 10.0


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str
    expires_in: int
    scope: str
    grant_id: UUID
    position: int

    def as_response(self) -> dict[str, object]:
        body: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


@dataclass(frozen=True)
class AccessInfo:
    account_id: UUID
    client_id: str
    scopes: frozenset[str]
    audience: str
    grant_id: UUID


@dataclass(frozen=True)
class RegisteredClient:
    client_id: str
    client_name: str
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scope: str
    issued_at: int
    position: int


class InvalidGrant(Unauthorized):
    code = "invalid_grant"


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def make_token(prefix: str, grant_id: UUID) -> str:
    return f"{prefix}{grant_id.hex}_{_new_secret()}"


def grant_id_of(token: str, prefix: str) -> UUID | None:
    """The grant a token names, or None when it is not one of ours."""
    if not isinstance(token, str) or not token.startswith(prefix) or len(token) > 200:
        return None
    rest = token[len(prefix) :]
    if len(rest) < 34 or rest[32] != "_":
        return None
    try:
        return UUID(hex=rest[:32])
    except ValueError:
        return None


class OAuthService:
    def __init__(
        self,
        store: EventStore,
        policy: OAuthPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.policy = policy or OAuthPolicy()
        self.clock = clock
        # Token checks are the hot path and a grant gains an event per refresh. This
        # repository caches grants and fast-forwards them with the events saved since
        # (one indexed read, usually empty) on every load, so a check stays cheap and
        # still sees a revocation written by any process at once.
        self.grants: Repository[UUID] = Repository(
            store.events, cache_maxsize=4096, fastforward=True
        )

    # -- clients (RFC 7591) -------------------------------------------------------------

    def register_client(
        self,
        redirect_uris: object,
        client_name: object = None,
        grant_types: object = None,
        scope: object = None,
    ) -> RegisteredClient:
        if not isinstance(redirect_uris, list) or not redirect_uris:
            raise ValidationFailed(
                "redirect_uris must be a non-empty array.", code="invalid_redirect_uri"
            )
        if len(redirect_uris) > MAX_REDIRECT_URIS:
            raise ValidationFailed(
                f"At most {MAX_REDIRECT_URIS} redirect_uris.", code="invalid_redirect_uri"
            )
        uris = tuple(dict.fromkeys(validate_redirect_uri(u) for u in redirect_uris))
        if client_name is None:
            name = ""
        elif isinstance(client_name, str) and len(client_name) <= MAX_CLIENT_NAME:
            name = client_name.strip()
        else:
            raise ValidationFailed(
                f"client_name must be a string of at most {MAX_CLIENT_NAME} characters.",
                code="invalid_client_metadata",
            )
        grants: tuple[str, ...]
        if grant_types is None:
            grants = GRANT_TYPES
        elif isinstance(grant_types, list) and all(isinstance(g, str) for g in grant_types):
            unsupported = [g for g in grant_types if g not in GRANT_TYPES]
            if unsupported or "authorization_code" not in grant_types:
                raise ValidationFailed(
                    "grant_types must include authorization_code and may add refresh_token.",
                    code="invalid_client_metadata",
                )
            grants = tuple(g for g in GRANT_TYPES if g in grant_types)
        else:
            raise ValidationFailed("grant_types must be an array.", code="invalid_client_metadata")
        if scope is not None and not isinstance(scope, str):
            raise ValidationFailed("scope must be a string.", code="invalid_client_metadata")
        # RFC 7591 §3.2.1 lets the server replace requested metadata: scopes it does not
        # serve are dropped (clients often ask for OIDC scopes) instead of failing.
        known = [s for s in (scope or "").split() if s in SUPPORTED_SCOPES]
        scopes = normalize_scope(" ".join(known))
        client_id = secrets.token_urlsafe(24)
        issued_at = int(self.clock())
        client = OAuthClient(
            client_id=client_id,
            client_name=name,
            redirect_uris=uris,
            grant_types=grants,
            scope=scopes,
            issued_at=issued_at,
        )
        position = self.store.save_all(client)
        return RegisteredClient(client_id, name, uris, grants, scopes, issued_at, position)

    def get_client(self, client_id: str | None) -> OAuthClient | None:
        """An active (not revoked) client, or None."""
        if not client_id or not isinstance(client_id, str) or len(client_id) > 200:
            return None
        client = self.store.find(client_aggregate_id(client_id), OAuthClient)
        if client is None or client.revoked:
            return None
        return client

    def revoke_client(self, client_id: str) -> bool:
        def attempt() -> bool:
            client = self.store.find(client_aggregate_id(client_id), OAuthClient)
            if client is None:
                return False
            if client.revoke():
                self.store.save_all(client)
            return True

        return retrying(attempt)

    # -- authorization codes --------------------------------------------------------------

    def issue_code(
        self,
        *,
        client_id: str,
        account_id: UUID,
        redirect_uri: str,
        scope: str,
        code_challenge: str,
        audience: str,
        provenance: str = "MCP",
        ttl: int | None = None,
    ) -> str:
        code = _new_secret()
        code_hash = secret_hash(code)
        aggregate = AuthorizationCode(
            code_hash=code_hash,
            client_id=client_id,
            account_id=account_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            audience=audience,
            expires_at=self.clock() + (ttl or self.policy.code_ttl),
            provenance=provenance,
        )
        self.store.save_all(aggregate)
        return code

    def find_code(self, code: str | None) -> AuthorizationCode | None:
        if not code or not isinstance(code, str) or len(code) > 200:
            return None
        return self.store.find(code_aggregate_id(secret_hash(code)), AuthorizationCode)

    def exchange_code(self, code: str, client_id: str) -> TokenSet:
        """Redeem a code once (atomically with the new grant). Reuse revokes its tokens."""

        def attempt() -> TokenSet:
            auth_code = self.find_code(code)
            if auth_code is None:
                raise InvalidGrant("Invalid authorization code.")
            if auth_code.redeemed:
                assert auth_code.grant_id is not None
                self.revoke_grant(auth_code.grant_id, "code_reused")
                raise InvalidGrant("Authorization code was already used; its tokens are revoked.")
            now = self.clock()
            grant, tokens = self._new_grant(
                client_id=auth_code.client_id,
                account_id=auth_code.account_id,
                scope=auth_code.scope,
                audience=auth_code.audience,
                via="authorization_code",
                now=now,
            )
            try:
                auth_code.redeem(grant.id, client_id, now)
            except (Conflict, Unauthorized) as e:
                raise InvalidGrant(e.message) from None
            position = self.store.save_all(auth_code, grant)
            return _with_position(tokens, position)

        return retrying(attempt)

    # -- grants -------------------------------------------------------------------------------

    def _new_grant(
        self, *, client_id: str, account_id: UUID, scope: str, audience: str, via: str, now: float
    ) -> tuple[Grant, TokenSet]:
        grant_id = uuid4()
        access = make_token(ACCESS_PREFIX, grant_id)
        refresh = make_token(REFRESH_PREFIX, grant_id)
        grant = Grant(
            id=grant_id,
            client_id=client_id,
            account_id=account_id,
            scope=scope,
            audience=audience,
            access_hash=secret_hash(access),
            access_expires_at=now + self.policy.access_ttl,
            refresh_hash=secret_hash(refresh),
            refresh_expires_at=now + self.policy.refresh_ttl,
            via=via,
        )
        return grant, TokenSet(access, refresh, self.policy.access_ttl, scope, grant_id, 0)

    def issue_direct(
        self, account_id: UUID, *, client_id: str, scope: str, audience: str, via: str
    ) -> TokenSet:
        """Operator escape hatch (CLI): a grant without an authorization code."""
        grant, tokens = self._new_grant(
            client_id=client_id,
            account_id=account_id,
            scope=normalize_scope(scope),
            audience=audience,
            via=via,
            now=self.clock(),
        )
        return _with_position(tokens, self.store.save_all(grant))

    def refresh(self, refresh_token: str, client_id: str, scope: str | None = None) -> TokenSet:
        grant_id = grant_id_of(refresh_token, REFRESH_PREFIX)
        if grant_id is None:
            raise InvalidGrant("Invalid refresh token.")
        presented = secret_hash(refresh_token)

        def attempt() -> TokenSet:
            grant = self.store.find(grant_id, Grant)
            if grant is None or grant.client_id != client_id:
                raise InvalidGrant("Invalid refresh token.")
            now = self.clock()
            state = grant.refresh_state(presented, now, self.policy.refresh_grace)
            if state == "reused":
                grant.revoke("refresh_reused")
                self.store.save_all(grant)
                raise InvalidGrant("Refresh token was reused; the whole grant is revoked.")
            if state not in ("active", "grace"):
                raise InvalidGrant(f"Refresh token is {state}.")
            if scope and not set(scope.split()) <= set(grant.scope.split()):
                raise ValidationFailed("Scope exceeds the original grant.", code="invalid_scope")
            access = make_token(ACCESS_PREFIX, grant.id)
            refresh = make_token(REFRESH_PREFIX, grant.id)
            grant.rotate(
                presented,
                access_hash=secret_hash(access),
                access_expires_at=now + self.policy.access_ttl,
                refresh_hash=secret_hash(refresh),
                refresh_expires_at=now + self.policy.refresh_ttl,
                now=now,
                grace=self.policy.refresh_grace,
            )
            position = self.store.save_all(grant)
            return TokenSet(
                access, refresh, self.policy.access_ttl, grant.scope, grant.id, position
            )

        return retrying(attempt)

    def authenticate_access(self, access_token: str | None) -> AccessInfo | None:
        """The grant behind a live access token (revocation and expiry checked), or None."""
        if not access_token:
            return None
        grant_id = grant_id_of(access_token, ACCESS_PREFIX)
        if grant_id is None:
            return None
        grant = self.load_grant(grant_id)
        if grant is None or not grant.access_valid(secret_hash(access_token), self.clock()):
            return None
        # A CLI-issued grant names no registered client: no lookup (one read saved).
        if not grant.via.startswith("cli") and self.get_client(grant.client_id) is None:
            return None
        return AccessInfo(
            account_id=grant.account_id,
            client_id=grant.client_id,
            scopes=frozenset(grant.scope.split()),
            audience=grant.audience,
            grant_id=grant.id,
        )

    def load_grant(self, grant_id: UUID) -> Grant | None:
        try:
            grant: object = self.grants.get(grant_id)
        except AggregateNotFoundError:
            return None
        return grant if isinstance(grant, Grant) else None

    def revoke_token(self, token: str, client_id: str | None = None) -> bool:
        """RFC 7009: revoke the grant an access or refresh token belongs to."""
        grant_id = grant_id_of(token, ACCESS_PREFIX) or grant_id_of(token, REFRESH_PREFIX)
        if grant_id is None:
            return False
        grant = self.store.find(grant_id, Grant)
        if grant is None or (client_id is not None and grant.client_id != client_id):
            return False
        hashed = secret_hash(token)
        if hashed not in grant.access and hashed not in grant.refresh:
            return False
        return self.revoke_grant(grant_id, "revoked")

    def revoke_grant(self, grant_id: UUID, reason: str) -> bool:
        def attempt() -> bool:
            grant = self.store.find(grant_id, Grant)
            if grant is None or not grant.revoke(reason):
                return False
            self.store.save_all(grant)
            return True

        return retrying(attempt)


def _with_position(tokens: TokenSet, position: int) -> TokenSet:
    return TokenSet(
        tokens.access_token,
        tokens.refresh_token,
        tokens.expires_in,
        tokens.scope,
        tokens.grant_id,
        position,
    )
