"""OAuth and API-key domain rules, and the use cases over an in-memory event store."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID, uuid4

import pytest

from backline.application.api_keys import ApiKeyService
from backline.application.oauth import (
    ACCESS_PREFIX,
    REFRESH_PREFIX,
    InvalidGrant,
    OAuthPolicy,
    OAuthService,
    grant_id_of,
)
from backline.application.store import EventStore
from backline.domain.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from backline.domain.oauth import (
    AuthorizationCode,
    Grant,
    check_pkce_challenge,
    normalize_scope,
    redirect_uri_matches,
    secret_hash,
    validate_redirect_uri,
)
from backline.infra.settings import Settings, SettingsError

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
MCP = "http://127.0.0.1:8000/api/mcp"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> EventStore:
    return EventStore()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def oauth(store: EventStore, clock: Clock) -> OAuthService:
    return OAuthService(store, OAuthPolicy(access_ttl=600, refresh_grace=10.0), clock=clock)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb",
        "http://127.0.0.1:5555/callback",
        "http://localhost/cb",
        "http://[::1]:8080/cb",
        "cursor://anysphere.cursor-mcp/oauth/callback",
    ],
)
def test_redirect_uris_accepted(uri: str) -> None:
    assert validate_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://evil.example/cb",
        "https://user:pw@x.example/cb",
        "https://x.example/cb#f",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "",
        "https://x.example/a b",
        42,
        "http://127.0.0.1:99999/cb",
    ],
)
def test_redirect_uris_refused(uri: object) -> None:
    with pytest.raises(ValidationFailed) as exc:
        validate_redirect_uri(uri)
    assert exc.value.code == "invalid_redirect_uri"


def test_loopback_any_port_but_same_path() -> None:
    assert redirect_uri_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:9/cb")
    assert not redirect_uri_matches("http://127.0.0.1:1/cb", "http://127.0.0.1:9/other")
    assert not redirect_uri_matches("http://127.0.0.1:1/cb", "http://localhost:9/cb")
    assert not redirect_uri_matches("https://a.example/cb", "https://a.example:8443/cb")
    assert redirect_uri_matches("cursor://x/cb", "cursor://x/cb")


def test_pkce_and_scope_rules() -> None:
    assert check_pkce_challenge(CHALLENGE, "S256") == CHALLENGE
    for challenge, method in [(CHALLENGE, "plain"), (CHALLENGE, None), ("", "S256"), ("x", "S256")]:
        with pytest.raises(ValidationFailed) as exc:
            check_pkce_challenge(challenge, method)
        assert exc.value.code == "pkce_required"
    assert normalize_scope(None) == "once:mcp"
    assert normalize_scope("once:mcp once:mcp") == "once:mcp"
    with pytest.raises(ValidationFailed):
        normalize_scope("admin")


def test_code_is_one_shot_and_bound_to_client() -> None:
    code = AuthorizationCode(
        code_hash="h",
        client_id="c1",
        account_id=uuid4(),
        redirect_uri="",
        scope="once:mcp",
        code_challenge=CHALLENGE,
        audience=MCP,
        expires_at=100.0,
        provenance="MCP",
    )
    with pytest.raises(Unauthorized):
        code.redeem(uuid4(), "c2", 50.0)
    with pytest.raises(Unauthorized):
        code.redeem(uuid4(), "c1", 100.0)
    code.redeem(uuid4(), "c1", 50.0)
    with pytest.raises(Conflict):
        code.redeem(uuid4(), "c1", 50.0)


def test_grant_rotation_states() -> None:
    grant = Grant(
        id=uuid4(),
        client_id="c",
        account_id=uuid4(),
        scope="once:mcp",
        audience=MCP,
        access_hash="a1",
        access_expires_at=200.0,
        refresh_hash="r1",
        refresh_expires_at=1000.0,
        via="authorization_code",
    )
    assert grant.access_valid("a1", 100.0)
    assert not grant.access_valid("a1", 200.0)
    assert grant.refresh_state("r1", 100.0, 10) == "active"
    assert grant.refresh_state("zz", 100.0, 10) == "unknown"
    grant.rotate(
        "r1",
        access_hash="a2",
        access_expires_at=300.0,
        refresh_hash="r2",
        refresh_expires_at=1100.0,
        now=150.0,
        grace=10,
    )
    assert grant.refresh_state("r1", 155.0, 10) == "grace"
    assert grant.refresh_state("r1", 161.0, 10) == "reused"
    assert grant.refresh_state("r2", 161.0, 10) == "active"
    assert grant.refresh_state("r2", 1100.0, 10) == "expired"
    with pytest.raises(Unauthorized):
        grant.rotate(
            "r1",
            access_hash="a3",
            access_expires_at=1.0,
            refresh_hash="r3",
            refresh_expires_at=1.0,
            now=200.0,
            grace=10,
        )
    assert grant.revoke("refresh_reused")
    assert not grant.revoke("again")
    assert not grant.access_valid("a2", 160.0)
    assert grant.refresh_state("r2", 160.0, 10) == "revoked"


def test_token_format() -> None:
    gid = uuid4()
    assert grant_id_of(f"{ACCESS_PREFIX}{gid.hex}_secret", ACCESS_PREFIX) == gid
    assert grant_id_of(f"{ACCESS_PREFIX}{gid.hex}_secret", REFRESH_PREFIX) is None
    for bad in ("", "blat_", f"blat_{gid.hex}", "blat_" + "z" * 32 + "_x", "x" * 500):
        assert grant_id_of(bad, ACCESS_PREFIX) is None


def _issue(oauth: OAuthService, client_id: str, account: UUID) -> str:
    return oauth.issue_code(
        client_id=client_id,
        account_id=account,
        redirect_uri="",
        scope="once:mcp",
        code_challenge=CHALLENGE,
        audience=MCP,
    )


def test_service_code_exchange_refresh_and_reuse(oauth: OAuthService, clock: Clock) -> None:
    client = oauth.register_client(["http://127.0.0.1:1/cb"], "t")
    account = uuid4()
    code = _issue(oauth, client.client_id, account)
    tokens = oauth.exchange_code(code, client.client_id)
    info = oauth.authenticate_access(tokens.access_token)
    assert info is not None
    assert info.account_id == account
    assert info.audience == MCP
    with pytest.raises(InvalidGrant):
        oauth.exchange_code(code, client.client_id)  # reuse revokes what it issued
    assert oauth.authenticate_access(tokens.access_token) is None

    code = _issue(oauth, client.client_id, account)
    tokens = oauth.exchange_code(code, client.client_id)
    clock.now += 5
    second = oauth.refresh(tokens.refresh_token, client.client_id)
    parallel = oauth.refresh(tokens.refresh_token, client.client_id)  # within grace
    assert oauth.authenticate_access(second.access_token) is not None
    assert oauth.authenticate_access(parallel.access_token) is not None
    clock.now += 30
    with pytest.raises(InvalidGrant):
        oauth.refresh(tokens.refresh_token, client.client_id)
    for t in (second, parallel):
        assert oauth.authenticate_access(t.access_token) is None
        with pytest.raises(InvalidGrant):
            oauth.refresh(t.refresh_token, client.client_id)


def test_service_expiry_and_client_revocation(oauth: OAuthService, clock: Clock) -> None:
    client = oauth.register_client(["http://127.0.0.1:1/cb"])
    code = _issue(oauth, client.client_id, uuid4())
    clock.now += 301
    with pytest.raises(InvalidGrant):
        oauth.exchange_code(code, client.client_id)
    code = _issue(oauth, client.client_id, uuid4())
    tokens = oauth.exchange_code(code, client.client_id)
    clock.now += 601
    assert oauth.authenticate_access(tokens.access_token) is None
    fresh = oauth.refresh(tokens.refresh_token, client.client_id)
    assert oauth.authenticate_access(fresh.access_token) is not None
    assert oauth.revoke_client(client.client_id)
    assert oauth.get_client(client.client_id) is None
    assert oauth.authenticate_access(fresh.access_token) is None
    assert not oauth.revoke_client("unknown")


def test_registration_validation(oauth: OAuthService) -> None:
    with pytest.raises(ValidationFailed):
        oauth.register_client(["http://127.0.0.1/cb"], grant_types=["client_credentials"])
    with pytest.raises(ValidationFailed):
        oauth.register_client(["http://127.0.0.1/cb"], client_name=["x"])
    with pytest.raises(ValidationFailed):
        oauth.register_client([f"http://127.0.0.1/cb{i}" for i in range(11)])
    with pytest.raises(ValidationFailed):
        oauth.register_client(["http://127.0.0.1/cb"], scope=["once:mcp"])
    # Scopes this server does not serve are dropped (RFC 7591 §3.2.1), not refused.
    assert oauth.register_client(["http://127.0.0.1/cb"], scope="openid root").scope == "once:mcp"
    reg = oauth.register_client(
        ["http://127.0.0.1/cb", "http://127.0.0.1/cb"], grant_types=["authorization_code"]
    )
    assert reg.redirect_uris == ("http://127.0.0.1/cb",)
    assert reg.grant_types == ("authorization_code",)


def test_secrets_never_in_events(store: EventStore, oauth: OAuthService) -> None:
    client = oauth.register_client(["http://127.0.0.1:1/cb"])
    code = _issue(oauth, client.client_id, uuid4())
    tokens = oauth.exchange_code(code, client.client_id)
    keys = ApiKeyService(store)
    issued = keys.create(uuid4(), "k")
    blob = b"".join(n.state for n in store.recorder.select_notifications(start=1, limit=1000))
    for secret in (code, tokens.access_token, tokens.refresh_token, issued.key):
        assert secret.encode() not in blob
        assert secret_hash(secret).encode() in blob


def test_api_key_service(store: EventStore) -> None:
    keys = ApiKeyService(store)
    owner, other = uuid4(), uuid4()
    issued = keys.create(owner, "  CI  ")
    assert issued.name == "CI"
    found = keys.authenticate(issued.key)
    assert found is not None
    assert found.account_id == owner
    assert keys.authenticate(issued.key + "x") is None
    assert keys.authenticate("nope") is None
    with pytest.raises(NotFound):
        keys.rotate(other, issued.key_id)
    rotated = keys.rotate(owner, issued.key_id)
    assert rotated.key_id == issued.key_id
    assert keys.authenticate(issued.key) is None
    assert keys.authenticate(rotated.key) is not None
    assert keys.revoke(owner, issued.key_id) > 0
    assert keys.revoke(owner, issued.key_id) == 0
    assert keys.authenticate(rotated.key) is None
    with pytest.raises(ValidationFailed):
        keys.create(owner, "x" * 101)


def test_token_checks_stay_cheap_and_consistent_after_many_refreshes(
    store: EventStore, oauth: OAuthService, clock: Clock
) -> None:
    client = oauth.register_client(["http://127.0.0.1:1/cb"])
    tokens = oauth.exchange_code(_issue(oauth, client.client_id, uuid4()), client.client_id)
    for _ in range(120):
        clock.now += 60
        tokens = oauth.refresh(tokens.refresh_token, client.client_id)
        assert oauth.authenticate_access(tokens.access_token) is not None
    # A second service (another process) revokes: the cached grant sees it at once.
    other = OAuthService(store, oauth.policy, clock=clock)
    assert other.revoke_token(tokens.access_token)
    assert oauth.authenticate_access(tokens.access_token) is None
    grant = oauth.load_grant(tokens.grant_id)
    assert grant is not None
    assert grant.revoked
    assert len(grant.refresh) == 0


def test_settings_for_oauth_and_rate_limits(tmp_path: Path) -> None:
    base = {"BACKLINE_DATA_DIR": str(tmp_path), "BACKLINE_SECRET_KEY": "k" * 40}
    s = Settings.from_env(
        {
            **base,
            "BACKLINE_FIRST_PARTY_CLIENT_IDS": " aimd-1 , ,aimd-2",
            "BACKLINE_RATE_LIMIT_V1_READ": "10/minute",
        }
    )
    assert s.first_party_client_ids == ("aimd-1", "aimd-2")
    assert s.rate_limit_v1_read == "10/minute"
    assert s.rate_limit_v1_write == "60 per 60 seconds"
    with pytest.raises(SettingsError):
        Settings.from_env({**base, "BACKLINE_RATE_LIMIT_MCP": "lots"})
    with pytest.raises(SettingsError):
        Settings.from_env({**base, "BACKLINE_OAUTH_ACCESS_TTL": "soon"})
