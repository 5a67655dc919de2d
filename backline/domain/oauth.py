"""OAuth 2.1 clients, authorization codes and token grants, as aggregates.

Pure domain: no I/O. Secrets (codes, tokens) never enter an event; only their SHA-256
hashes do. Every aggregate that is looked up by a secret has a deterministic id derived
from the secret's hash (``uuid5(namespace, sha256(secret))``), so finding it needs no
index and two racing writers of the same secret collide on version 1 (the store lets
exactly one win). Time is an argument (epoch seconds) so expiry rules are deterministic.

Token design (see ``application/oauth.py`` for the full rationale): opaque random
tokens. An access or refresh token names its :class:`Grant` (one per authorization,
the "token family") and carries 256 random bits; the grant keeps only hashes. Checking
a token loads the grant, so revoking the grant revokes every token in the family at once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, Unauthorized, ValidationFailed

CLIENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/oauth-client")
CODE_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/oauth-code")

SUPPORTED_SCOPES = ("once:mcp",)
DEFAULT_SCOPE = "once:mcp"
GRANT_TYPES = ("authorization_code", "refresh_token")
# Private-use URI schemes of known desktop MCP clients (RFC 8252 §7.1).
PRIVATE_SCHEMES = ("cursor", "vscode", "vscode-insiders")
MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_CLIENT_NAME = 200
PKCE_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


def secret_hash(secret: str) -> str:
    """SHA-256 hex of a secret (what is stored instead of the secret)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def client_aggregate_id(client_id: str) -> UUID:
    return uuid5(CLIENT_NAMESPACE, client_id)


def code_aggregate_id(code_hash: str) -> UUID:
    return uuid5(CODE_NAMESPACE, code_hash)


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def validate_redirect_uri(uri: Any) -> str:
    """Accept https, loopback http (any port) and known private-use schemes."""
    if not isinstance(uri, str) or not uri or len(uri) > MAX_URI_LENGTH:
        raise ValidationFailed("redirect_uri must be a non-empty URI.", code="invalid_redirect_uri")
    if any(ch.isspace() for ch in uri):
        raise ValidationFailed("redirect_uri must not contain spaces.", code="invalid_redirect_uri")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValidationFailed("redirect_uri is malformed.", code="invalid_redirect_uri") from None
    if parts.fragment:
        raise ValidationFailed(
            "redirect_uri must not have a fragment.", code="invalid_redirect_uri"
        )
    scheme = parts.scheme.lower()
    if scheme == "https":
        if not parts.hostname or parts.username or parts.password:
            raise ValidationFailed(
                "https redirect_uri needs a host and no credentials.", code="invalid_redirect_uri"
            )
        return uri
    if scheme == "http":
        if is_loopback_host(parts.hostname) and not parts.username:
            return uri
        raise ValidationFailed(
            "http redirect URIs are allowed only on loopback (127.0.0.1, [::1], localhost).",
            code="invalid_redirect_uri",
        )
    if scheme in PRIVATE_SCHEMES:
        return uri
    raise ValidationFailed(
        f"redirect_uri scheme {scheme!r} is not allowed (https, loopback http, "
        f"{', '.join(s + '://' for s in PRIVATE_SCHEMES)}).",
        code="invalid_redirect_uri",
    )


def redirect_uri_matches(registered: str, requested: str) -> bool:
    """Exact match, except loopback URIs may use any port (RFC 8252 §7.3)."""
    if registered == requested:
        return True
    try:
        a, b = urlsplit(registered), urlsplit(requested)
    except ValueError:
        return False
    if a.scheme != "http" or b.scheme != "http":
        return False
    if not (is_loopback_host(a.hostname) and a.hostname == b.hostname):
        return False
    return (a.path or "/") == (b.path or "/") and a.query == b.query and not b.fragment


def normalize_scope(scope: str | None) -> str:
    """Space-separated supported scopes (default ``once:mcp``); refuses unknown ones."""
    requested = (scope or "").split()
    if not requested:
        return DEFAULT_SCOPE
    unknown = [s for s in requested if s not in SUPPORTED_SCOPES]
    if unknown:
        raise ValidationFailed(f"Unsupported scope: {' '.join(unknown)}", code="invalid_scope")
    return " ".join(dict.fromkeys(requested))


def check_pkce_challenge(challenge: str | None, method: str | None) -> str:
    """PKCE with S256 only: a missing challenge or ``plain`` is refused."""
    if not challenge or method != "S256":
        raise ValidationFailed(
            "PKCE is required: send code_challenge with code_challenge_method S256.",
            code="pkce_required",
        )
    if not PKCE_PATTERN.match(challenge):
        raise ValidationFailed("code_challenge is malformed.", code="pkce_required")
    return challenge


class OAuthClient(Aggregate):
    """A dynamically registered (RFC 7591) public client."""

    TOPIC = "backline.OAuthClient"

    class Created(Aggregate.Created):
        TOPIC = "backline.OAuthClient.Created"

    class Event(Aggregate.Event):
        pass

    class Registered(Created):
        TOPIC = "backline.OAuthClient.Registered"
        client_id: str
        client_name: str
        redirect_uris: tuple[str, ...]
        grant_types: tuple[str, ...]
        scope: str
        issued_at: int

    @staticmethod
    def create_id(client_id: str) -> UUID:
        return client_aggregate_id(client_id)

    @event(Registered)
    def __init__(
        self,
        client_id: str,
        client_name: str,
        redirect_uris: tuple[str, ...],
        grant_types: tuple[str, ...],
        scope: str,
        issued_at: int,
    ) -> None:
        self.client_id = client_id
        self.client_name = client_name
        self.redirect_uris = tuple(redirect_uris)
        self.grant_types = tuple(grant_types)
        self.scope = scope
        self.issued_at = issued_at
        self.revoked = False

    class Revoked(Event):
        TOPIC = "backline.OAuthClient.Revoked"
        client_id: str

    @event(Revoked)
    def _revoked(self, client_id: str) -> None:
        self.revoked = True

    def revoke(self) -> bool:
        if self.revoked:
            return False
        self._revoked(client_id=self.client_id)
        return True

    def accepts_redirect(self, uri: str) -> bool:
        return any(redirect_uri_matches(r, uri) for r in self.redirect_uris)


class AuthorizationCode(Aggregate):
    """A one-shot authorization code, bound to client, redirect URI, PKCE and audience."""

    TOPIC = "backline.AuthorizationCode"

    class Created(Aggregate.Created):
        TOPIC = "backline.AuthorizationCode.Created"

    class Event(Aggregate.Event):
        pass

    class Issued(Created):
        TOPIC = "backline.AuthorizationCode.Issued"
        code_hash: str
        client_id: str
        account_id: UUID
        redirect_uri: str
        scope: str
        code_challenge: str
        audience: str
        expires_at: float
        provenance: str

    @staticmethod
    def create_id(code_hash: str) -> UUID:
        return code_aggregate_id(code_hash)

    @event(Issued)
    def __init__(
        self,
        code_hash: str,
        client_id: str,
        account_id: UUID,
        redirect_uri: str,
        scope: str,
        code_challenge: str,
        audience: str,
        expires_at: float,
        provenance: str,
    ) -> None:
        self.code_hash = code_hash
        self.client_id = client_id
        self.account_id = account_id
        self.redirect_uri = redirect_uri
        self.scope = scope
        self.code_challenge = code_challenge
        self.audience = audience
        self.expires_at = expires_at
        self.provenance = provenance
        self.grant_id: UUID | None = None

    @property
    def redeemed(self) -> bool:
        return self.grant_id is not None

    def is_expired(self, now: float) -> bool:
        return now >= self.expires_at

    class Redeemed(Event):
        TOPIC = "backline.AuthorizationCode.Redeemed"
        grant_id: UUID

    @event(Redeemed)
    def _redeemed(self, grant_id: UUID) -> None:
        self.grant_id = grant_id

    def redeem(self, grant_id: UUID, client_id: str, now: float) -> None:
        if self.redeemed:
            raise Conflict("Authorization code was already used.", code="invalid_grant")
        if client_id != self.client_id:
            raise Unauthorized("Code was issued to another client.", code="invalid_grant")
        if self.is_expired(now):
            raise Unauthorized("Authorization code expired.", code="invalid_grant")
        self._redeemed(grant_id=grant_id)


class Grant(Aggregate):
    """One authorization: the family of access and refresh tokens it issued.

    Refresh tokens rotate on every use. The token just replaced stays usable for a
    short grace window (parallel refreshes from one client both succeed); presenting
    it after the window is reuse, which revokes the whole family.
    """

    TOPIC = "backline.OAuthGrant"

    class Created(Aggregate.Created):
        TOPIC = "backline.OAuthGrant.Created"

    class Event(Aggregate.Event):
        pass

    class Issued(Created):
        TOPIC = "backline.OAuthGrant.Issued"
        client_id: str
        account_id: UUID
        scope: str
        audience: str
        access_hash: str
        access_expires_at: float
        refresh_hash: str
        refresh_expires_at: float
        via: str

    @event(Issued)
    def __init__(
        self,
        id: UUID,  # the grant id the tokens name (chosen before the tokens)
        client_id: str,
        account_id: UUID,
        scope: str,
        audience: str,
        access_hash: str,
        access_expires_at: float,
        refresh_hash: str,
        refresh_expires_at: float,
        via: str,
    ) -> None:
        self.client_id = client_id
        self.account_id = account_id
        self.scope = scope
        self.audience = audience
        self.via = via
        self.access: dict[str, float] = {access_hash: access_expires_at}
        self.refresh: dict[str, float] = {}
        if refresh_hash:
            self.refresh[refresh_hash] = refresh_expires_at
        self.retired: dict[str, float] = {}
        self.revoked = False
        self.revoked_reason = ""

    # -- checks -----------------------------------------------------------------------

    def access_valid(self, access_hash: str, now: float) -> bool:
        if self.revoked:
            return False
        expires = self.access.get(access_hash)
        return expires is not None and now < expires

    def refresh_state(self, refresh_hash: str, now: float, grace: float) -> str:
        """``active``, ``grace`` (just rotated), ``reused``, ``expired`` or ``unknown``."""
        if self.revoked:
            return "revoked"
        if refresh_hash in self.refresh:
            return "active" if now < self.refresh[refresh_hash] else "expired"
        retired_at = self.retired.get(refresh_hash)
        if retired_at is None:
            return "unknown"
        return "grace" if now - retired_at <= grace else "reused"

    # -- commands -----------------------------------------------------------------------

    class Rotated(Event):
        TOPIC = "backline.OAuthGrant.Rotated"
        presented_hash: str
        access_hash: str
        access_expires_at: float
        refresh_hash: str
        refresh_expires_at: float
        at: float

    @event(Rotated)
    def _rotated(
        self,
        presented_hash: str,
        access_hash: str,
        access_expires_at: float,
        refresh_hash: str,
        refresh_expires_at: float,
        at: float,
    ) -> None:
        if presented_hash in self.refresh:
            del self.refresh[presented_hash]
            self.retired[presented_hash] = at
        self.refresh[refresh_hash] = refresh_expires_at
        self.access[access_hash] = access_expires_at
        # Forget what can no longer matter: expired access tokens, long-retired hashes.
        self.access = {h: e for h, e in self.access.items() if e > at}
        self.refresh = {h: e for h, e in self.refresh.items() if e > at}

    def rotate(
        self,
        presented_hash: str,
        *,
        access_hash: str,
        access_expires_at: float,
        refresh_hash: str,
        refresh_expires_at: float,
        now: float,
        grace: float,
    ) -> None:
        state = self.refresh_state(presented_hash, now, grace)
        if state not in ("active", "grace"):
            raise Unauthorized(f"Refresh token is {state}.", code="invalid_grant")
        self._rotated(
            presented_hash=presented_hash,
            access_hash=access_hash,
            access_expires_at=access_expires_at,
            refresh_hash=refresh_hash,
            refresh_expires_at=refresh_expires_at,
            at=now,
        )

    class Revoked(Event):
        TOPIC = "backline.OAuthGrant.Revoked"
        reason: str

    @event(Revoked)
    def _revoked(self, reason: str) -> None:
        self.revoked = True
        self.revoked_reason = reason
        self.access = {}
        self.refresh = {}

    def revoke(self, reason: str) -> bool:
        if self.revoked:
            return False
        self._revoked(reason=reason)
        return True
