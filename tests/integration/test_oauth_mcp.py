"""OAuth 2.1 server, MCP endpoint and first-party tools through the real ASGI app.

Every attack listed in issue 3 is a test here (or in test_api_keys_ratelimit.py): each is
refused with the right status and typed code.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID

import pytest
from litestar.testing import TestClient

from backline.api.app import create_app
from backline.domain.account import Account
from backline.infra.asgi import api_config
from backline.infra.container import Container
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
PUBLIC = "http://127.0.0.1:8000"
MCP_URL = f"{PUBLIC}/api/mcp"
REDIRECT = "http://127.0.0.1:45678/callback"
AIMD = "https://app.aimusicdistributor.com"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Harness:
    def __init__(self, client: TestClient, container: Container) -> None:  # type: ignore[type-arg]
        self.client = client
        self.container = container

    # -- browser-ish helpers ---------------------------------------------------------------

    def csrf(self) -> str:
        self.client.get("/users/log-in")
        token = self.client.cookies.get("csrftoken")
        assert token
        return token

    def sign_up(self, email: str = "ada@example.com") -> str:
        r = self.client.post(
            "/users/register",
            json={"email": email, "password": PASSWORD, "first_name": "Ada"},
            headers={"x-csrftoken": self.csrf()},
        )
        assert r.status_code == 201, r.text
        return str(r.json()["userId"])

    def register_client(self, redirect: str = REDIRECT, **extra: Any) -> str:
        r = self.client.post(
            "/oauth/register", json={"redirect_uris": [redirect], "client_name": "Test", **extra}
        )
        assert r.status_code == 201, r.text
        return str(r.json()["client_id"])

    def authorize_params(self, client_id: str, challenge: str, **over: str) -> dict[str, str]:
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "state": "st-123",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "once:mcp",
            "resource": MCP_URL,
        }
        params.update(over)
        return {k: v for k, v in params.items() if v != ""}

    def consent(self, params: dict[str, str], decision: str = "allow") -> Any:
        page = self.client.get("/oauth/authorize", params=params, follow_redirects=False)
        assert page.status_code == 200, page.text
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token, page.text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        fields["decision"] = decision
        return self.client.post("/oauth/authorize", data=fields, follow_redirects=False)

    def code_for(self, client_id: str, challenge: str, **over: str) -> str:
        r = self.consent(self.authorize_params(client_id, challenge, **over))
        assert r.status_code == 302, r.text
        query = parse_qs(urlsplit(r.headers["location"]).query)
        assert query["state"] == ["st-123"]
        return str(query["code"][0])

    def token(self, **form: str) -> Any:
        return self.client.post("/oauth/token", data=form)

    def exchange(self, client_id: str, code: str, verifier: str, **extra: str) -> Any:
        return self.token(
            grant_type="authorization_code",
            code=code,
            redirect_uri=REDIRECT,
            client_id=client_id,
            code_verifier=verifier,
            resource=MCP_URL,
            **extra,
        )

    def full_flow(self) -> tuple[str, dict[str, Any]]:
        self.sign_up()
        client_id = self.register_client()
        verifier, challenge = pkce()
        code = self.code_for(client_id, challenge)
        r = self.exchange(client_id, code, verifier)
        assert r.status_code == 200, r.text
        return client_id, r.json()

    # -- MCP -------------------------------------------------------------------------------

    def rpc(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        token: str | None = None,
        id_: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if id_ is not None:
            body["id"] = id_
        if params is not None:
            body["params"] = params
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {token}"
        return self.client.post("/api/mcp", json=body, headers=h)


def build(
    tmp_path: Path, database_url: str | None = None, **env: str
) -> tuple[TestClient, Container]:  # type: ignore[type-arg]
    url = database_url or f"sqlite:///{tmp_path / 'b.db'}"
    settings = make_settings(url, tmp_path, **env)
    container = Container.build(settings)
    return TestClient(
        create_app(container, api_config(settings), start_background=False)
    ), container


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    client, container = build(tmp_path)
    with client:
        yield Harness(client, container)


# -- discovery -------------------------------------------------------------------------------


def test_discovery_documents(h: Harness) -> None:
    for path in (
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/api/mcp",
    ):
        prm = h.client.get(path).json()
        assert prm["resource"] == MCP_URL
        assert prm["authorization_servers"] == [PUBLIC]
    for path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
        asm = h.client.get(path).json()
        assert asm["issuer"] == PUBLIC
        assert asm["code_challenge_methods_supported"] == ["S256"]
        assert asm["registration_endpoint"] == f"{PUBLIC}/oauth/register"
        assert asm["token_endpoint"] == f"{PUBLIC}/oauth/token"
        assert asm["authorization_endpoint"] == f"{PUBLIC}/oauth/authorize"


def test_registration_rules(h: Harness) -> None:
    r = h.client.post(
        "/oauth/register",
        json={
            "redirect_uris": ["http://127.0.0.1:5555/cb", "cursor://anysphere.cursor-mcp/oauth/cb"],
            "token_endpoint_auth_method": "client_secret_post",
        },
    )
    assert r.status_code == 201
    body = r.json()
    assert None not in body.values()
    assert body["token_endpoint_auth_method"] == "none"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert "client_secret" not in body
    for bad in (
        ["http://evil.example/cb"],
        ["javascript:alert(1)"],
        ["https://x.example/cb#frag"],
        [],
        "https://x.example/cb",
    ):
        r = h.client.post("/oauth/register", json={"redirect_uris": bad})
        assert r.status_code == 400, bad
        assert r.json()["error"] in ("invalid_redirect_uri", "invalid_client_metadata")
    assert h.client.post("/oauth/register", content=b"{nope").status_code == 400


# -- authorization endpoint --------------------------------------------------------------------


def test_signed_out_user_is_sent_to_login_and_back(h: Harness) -> None:
    client_id = h.register_client()
    _, challenge = pkce()
    params = h.authorize_params(client_id, challenge)
    r = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert r.status_code == 303
    location = r.headers["location"]
    assert location.startswith("/users/log-in?next=")
    next_url = parse_qs(urlsplit(location).query)["next"][0]
    assert next_url.startswith("/oauth/authorize?")
    # Sign in through the HTML form with that next, land on the consent page.
    h.sign_up()
    h.client.cookies.clear()
    token = h.csrf()
    r = h.client.post(
        "/users/log-in",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "next": next_url,
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == next_url
    page = h.client.get(next_url)
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "Test" in page.text
    assert "once:mcp" in page.text


def test_full_flow_then_mcp_and_profile(h: Harness) -> None:
    _client_id, tokens = h.full_flow()
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "once:mcp"
    assert tokens["refresh_token"].startswith("blrt_")
    access = tokens["access_token"]
    # The token is stored only as a hash.
    assert access.encode() not in (h.container.settings.data_dir / "b.db").read_bytes()
    r = h.rpc("tools/call", {"name": "get_profile", "arguments": {}}, token=access)
    result = r.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["profile"]["email"] == "ada@example.com"
    assert result["content"][0]["type"] == "text"
    # GET /api/profile with the bearer token (it wins over the cookie), even before the
    # profile projection has caught up (no background runner here).
    h.client.cookies.clear()
    r = h.client.get("/api/profile", headers={"Authorization": f"Bearer {access}"})
    assert r.status_code == 200
    assert r.json()["profile"]["email"] == "ada@example.com"


def test_deny_redirects_with_access_denied(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    _, challenge = pkce()
    r = h.consent(h.authorize_params(client_id, challenge), decision="deny")
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-123"]
    assert "code" not in query


def test_consent_post_requires_csrf(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    _, challenge = pkce()
    fields = {**h.authorize_params(client_id, challenge), "decision": "allow"}
    r = h.client.post("/oauth/authorize", data=fields, follow_redirects=False)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "over",
    [
        {"code_challenge": "", "code_challenge_method": ""},  # missing PKCE
        {"code_challenge_method": "plain"},  # plain refused
        {"code_challenge_method": ""},  # method missing means plain
    ],
)
def test_pkce_missing_or_plain_refused(h: Harness, over: dict[str, str]) -> None:
    h.sign_up()
    client_id = h.register_client()
    _, challenge = pkce()
    params = h.authorize_params(client_id, challenge, **over)
    r = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert r.status_code == 302
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query


def test_unregistered_redirect_uri_is_never_redirected_to(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    _, challenge = pkce()
    params = h.authorize_params(client_id, challenge, redirect_uri="https://evil.example/cb")
    r = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert r.status_code == 400
    assert "location" not in r.headers
    # Loopback redirect URIs match on any port (RFC 8252).
    params = h.authorize_params(client_id, challenge, redirect_uri="http://127.0.0.1:1111/callback")
    assert h.client.get("/oauth/authorize", params=params).status_code == 200


def test_unknown_client_at_authorize(h: Harness) -> None:
    _, challenge = pkce()
    r = h.client.get(
        "/oauth/authorize", params=h.authorize_params("nope", challenge), follow_redirects=False
    )
    assert r.status_code == 400


def test_wrong_resource_refused(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    verifier, challenge = pkce()
    params = h.authorize_params(client_id, challenge, resource="https://other.example/api/mcp")
    r = h.client.get("/oauth/authorize", params=params, follow_redirects=False)
    assert r.status_code == 302
    assert parse_qs(urlsplit(r.headers["location"]).query)["error"] == ["invalid_target"]
    code = h.code_for(client_id, challenge)
    r = h.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri=REDIRECT,
        client_id=client_id,
        code_verifier=verifier,
        resource="https://other.example/api/mcp",
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_target"


# -- token endpoint ------------------------------------------------------------------------------


def test_wrong_verifier_refused(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    _, challenge = pkce()
    code = h.code_for(client_id, challenge)
    other_verifier, _ = pkce()
    r = h.exchange(client_id, code, other_verifier)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    r = h.token(
        grant_type="authorization_code", code=code, redirect_uri=REDIRECT, client_id=client_id
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"


def test_reused_code_refused_and_its_tokens_revoked(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    verifier, challenge = pkce()
    code = h.code_for(client_id, challenge)
    first = h.exchange(client_id, code, verifier)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert h.rpc("ping", token=access).status_code == 200
    again = h.exchange(client_id, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    assert h.rpc("ping", token=access).status_code == 401


def test_code_for_another_client_refused(h: Harness) -> None:
    h.sign_up()
    client_a = h.register_client()
    client_b = h.register_client()
    verifier, challenge = pkce()
    code = h.code_for(client_a, challenge)
    r = h.exchange(client_b, code, verifier)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"
    # The code still works for its own client afterwards? No: it was not redeemed, so yes.
    assert h.exchange(client_a, code, verifier).status_code == 200


def test_redirect_uri_must_match_at_token(h: Harness) -> None:
    h.sign_up()
    client_id = h.register_client()
    verifier, challenge = pkce()
    code = h.code_for(client_id, challenge)
    r = h.token(
        grant_type="authorization_code",
        code=code,
        redirect_uri="http://127.0.0.1:45678/other",
        client_id=client_id,
        code_verifier=verifier,
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_unknown_client_at_token_is_401(h: Harness) -> None:
    r = h.token(grant_type="authorization_code", code="x", client_id="nope", code_verifier="y" * 43)
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = h.token(grant_type="authorization_code", code="x")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert h.token(grant_type="password", client_id="x").json()["error"] == "unsupported_grant_type"
    assert h.client.post("/oauth/token", json={"grant_type": "x"}).status_code == 400


def test_expired_access_token_refused(h: Harness) -> None:
    _, tokens = h.full_flow()
    access = tokens["access_token"]
    assert h.rpc("ping", token=access).status_code == 200
    real = h.container.oauth.clock
    h.container.oauth.clock = lambda: real() + 3601
    try:
        r = h.rpc("ping", token=access)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
    finally:
        h.container.oauth.clock = real


def test_revoked_token_refused(h: Harness) -> None:
    client_id, tokens = h.full_flow()
    access = tokens["access_token"]
    r = h.client.post(
        "/oauth/revoke", data={"token": tokens["refresh_token"], "client_id": client_id}
    )
    assert r.status_code == 200
    assert h.rpc("ping", token=access).status_code == 401
    r = h.token(
        grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=client_id
    )
    assert r.status_code == 400


def test_refresh_rotation_grace_and_reuse(h: Harness) -> None:
    client_id, tokens = h.full_flow()
    r1 = tokens["refresh_token"]
    first = h.token(
        grant_type="refresh_token", refresh_token=r1, client_id=client_id, resource=MCP_URL
    )
    assert first.status_code == 200, first.text
    r2 = first.json()["refresh_token"]
    assert r2 != r1
    # A parallel refresh with r1 inside the grace window also succeeds.
    parallel = h.token(grant_type="refresh_token", refresh_token=r1, client_id=client_id)
    assert parallel.status_code == 200
    r3 = parallel.json()["refresh_token"]
    assert h.rpc("ping", token=parallel.json()["access_token"]).status_code == 200
    # After the grace window, r1 again is reuse: the whole family is revoked.
    real = h.container.oauth.clock
    h.container.oauth.clock = lambda: real() + 60
    try:
        reuse = h.token(grant_type="refresh_token", refresh_token=r1, client_id=client_id)
        assert reuse.status_code == 400
        assert reuse.json()["error"] == "invalid_grant"
        for rt in (r2, r3):
            r = h.token(grant_type="refresh_token", refresh_token=rt, client_id=client_id)
            assert r.status_code == 400
        assert h.rpc("ping", token=first.json()["access_token"]).status_code == 401
    finally:
        h.container.oauth.clock = real


def test_refresh_by_another_client_refused(h: Harness) -> None:
    _client_id, tokens = h.full_flow()
    other = h.register_client()
    r = h.token(grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=other)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_grant"


def test_token_with_wrong_audience_refused_at_mcp(h: Harness) -> None:
    account_id = h.sign_up()
    issued = h.container.oauth.issue_direct(
        UUID(account_id),
        client_id="backline-cli",
        scope="once:mcp",
        audience="https://other.example/api/mcp",
        via="cli",
    )
    r = h.rpc("ping", token=issued.access_token)
    assert r.status_code == 401
    good = h.container.oauth.issue_direct(
        UUID(account_id), client_id="backline-cli", scope="once:mcp", audience=MCP_URL, via="cli"
    )
    assert h.rpc("ping", token=good.access_token).status_code == 200


def test_revoked_client_tokens_stop(h: Harness) -> None:
    client_id, tokens = h.full_flow()
    assert h.container.oauth.revoke_client(client_id)
    assert h.rpc("ping", token=tokens["access_token"]).status_code == 401


# -- MCP endpoint ---------------------------------------------------------------------------------


def test_unauthenticated_gets_challenge(h: Harness) -> None:
    r = h.rpc("initialize", {"protocolVersion": "2025-06-18"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith(
        f'Bearer resource_metadata="{PUBLIC}/.well-known/oauth-protected-resource/api/mcp"'
    )
    r = h.rpc("tools/list", token="blat_garbage")
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_get_and_bad_origin(h: Harness) -> None:
    assert h.client.get("/api/mcp").status_code == 405
    _, tokens = h.full_flow()
    r = h.rpc("ping", token=tokens["access_token"], headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = h.rpc("ping", token=tokens["access_token"], headers={"Origin": PUBLIC})
    assert r.status_code == 200


@pytest.mark.parametrize("version", ["2025-03-26", "2025-06-18", "2025-11-25"])
def test_initialize_echoes_supported_versions(h: Harness, version: str) -> None:
    _, tokens = h.full_flow()
    r = h.rpc(
        "initialize",
        {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
        token=tokens["access_token"],
    )
    result = r.json()["result"]
    assert result["protocolVersion"] == version
    assert "tools" in result["capabilities"]


def test_protocol_basics(h: Harness) -> None:
    _, tokens = h.full_flow()
    tok = tokens["access_token"]
    r = h.rpc("initialize", {"protocolVersion": "1999-01-01"}, token=tok)
    assert r.json()["result"]["protocolVersion"] == "2025-11-25"
    r = h.rpc("notifications/initialized", token=tok, id_=None)
    assert r.status_code == 202
    assert r.content == b""
    assert h.rpc("ping", token=tok).json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
    tools = {t["name"]: t for t in h.rpc("tools/list", token=tok).json()["result"]["tools"]}
    assert {"get_profile", "create_account", "password_authorize"} <= set(tools)
    assert tools["get_profile"]["outputSchema"]["type"] == "object"
    assert "profile" in tools["get_profile"]["outputSchema"]["properties"]
    assert "email" in tools["create_account"]["inputSchema"]["properties"]
    r = h.rpc("ping", token=tok, headers={"MCP-Protocol-Version": "2030-01-01"})
    assert r.status_code == 400


def test_jsonrpc_garbage(h: Harness) -> None:
    _, tokens = h.full_flow()
    auth = {"Authorization": f"Bearer {tokens['access_token']}", "Content-Type": "application/json"}

    def post(raw: bytes) -> Any:
        return h.client.post("/api/mcp", content=raw, headers=auth)

    r = post(b"{not json")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == -32700
    for raw in (
        b'{"jsonrpc": "1.0", "id": 1, "method": "ping"}',
        b"42",
        b'{"jsonrpc": "2.0", "id": 1}',
        b'{"jsonrpc": "2.0", "id": {"x": 1}, "method": "ping"}',
        b"[]",
    ):
        r = post(raw)
        assert r.status_code == 400, raw
        assert r.json()["error"]["code"] == -32600, raw
    r = h.rpc("no/such/method", token=tokens["access_token"])
    assert r.json()["error"]["code"] == -32601
    r = h.rpc("tools/call", {"name": "no_such_tool", "arguments": {}}, token=tokens["access_token"])
    assert r.json()["error"]["code"] == -32602
    r = h.rpc(
        "tools/call",
        {"name": "create_account", "arguments": {"email": 5}},
        token=tokens["access_token"],
    )
    assert r.json()["error"]["code"] == -32602
    r = h.rpc("tools/call", {"name": "get_profile", "arguments": []}, token=tokens["access_token"])
    assert r.json()["error"]["code"] == -32602


def test_oversized_body_refused(h: Harness) -> None:
    _, tokens = h.full_flow()
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Content-Type": "application/json",
    }
    # A base64 upload_file of a few MB fits (the endpoint allows 12 MiB) ...
    fits = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 3_000_000 + b'"}}'
    assert h.client.post("/api/mcp", content=fits, headers=headers).status_code == 200
    # ... anything larger is refused before it is read.
    big = b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"' + b"a" * 13_000_000 + b'"}}'
    r = h.client.post("/api/mcp", content=big, headers=headers)
    assert r.status_code == 413


# -- first-party tools ----------------------------------------------------------------------------


@pytest.fixture
def fp(tmp_path: Path) -> Iterator[tuple[Harness, str]]:
    """A harness whose server allowlists one registered first-party client."""
    client, container = build(tmp_path / "a")
    client_id = container.oauth.register_client([f"{AIMD}/oauth/callback"], "AIMD").client_id
    container.close()
    client, container = build(
        tmp_path / "a",
        BACKLINE_FIRST_PARTY_CLIENT_IDS=client_id,
        BACKLINE_DATA_DIR=str(tmp_path / "a"),
    )
    with client:
        yield Harness(client, container), client_id


def fp_args(client_id: str, challenge: str, **over: Any) -> dict[str, Any]:
    args = {
        "email": "artist@example.com",
        "password": "correct-horse-battery-staple",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "client_id": client_id,
        "redirect_uri": f"{AIMD}/oauth/callback",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": "once:mcp",
        "provenance": "AIMD",
    }
    args.update(over)
    return args


def test_create_account_then_exchange(fp: tuple[Harness, str]) -> None:
    h, client_id = fp
    verifier, challenge = pkce()
    r = h.rpc("tools/call", {"name": "create_account", "arguments": fp_args(client_id, challenge)})
    out = r.json()["result"]["structuredContent"]
    assert out["email"] == "artist@example.com"
    assert out["authorization_code"]
    account = h.container.store.get(UUID(out["userId"]), Account)
    assert account.provenance == "AIMD"
    r = h.token(
        grant_type="authorization_code",
        code=out["authorization_code"],
        redirect_uri=f"{AIMD}/oauth/callback",
        client_id=client_id,
        code_verifier=verifier,
    )
    assert r.status_code == 200, r.text
    access = r.json()["access_token"]
    prof = h.rpc("tools/call", {"name": "get_profile", "arguments": {}}, token=access).json()
    assert prof["result"]["structuredContent"]["profile"]["first_name"] == "Ada"
    # One-shot: a second exchange fails.
    r = h.token(
        grant_type="authorization_code",
        code=out["authorization_code"],
        redirect_uri=f"{AIMD}/oauth/callback",
        client_id=client_id,
        code_verifier=verifier,
    )
    assert r.status_code == 400
    # The same email again: email_taken.
    r = h.rpc("tools/call", {"name": "create_account", "arguments": fp_args(client_id, challenge)})
    assert r.json()["error"]["data"]["code"] == "email_taken"


def test_first_party_typed_errors(fp: tuple[Harness, str]) -> None:
    h, client_id = fp
    _, challenge = pkce()

    def code_of(name: str, **over: Any) -> str:
        cid = over.pop("client_id", client_id)
        r = h.rpc("tools/call", {"name": name, "arguments": fp_args(cid, challenge, **over)})
        return str(r.json()["error"]["data"]["code"])

    assert code_of("create_account", password="short") == "weak_password"
    assert code_of("create_account", code_challenge_method="plain") == "pkce_required"
    assert code_of("create_account", code_challenge="") == "pkce_required"
    assert code_of("create_account", redirect_uri="https://evil.example/cb") == "invalid_client"
    other = h.register_client(redirect=f"{AIMD}/oauth/callback")  # registered, not allowlisted
    assert code_of("create_account", client_id=other) == "invalid_client"
    assert code_of("password_authorize", client_id=other) == "invalid_client"
    assert code_of("password_authorize", code_challenge="") == "pkce_required"
    assert code_of("password_authorize", email="nobody@example.com") == "invalid_credentials"


def test_password_authorize_and_brute_force_lockout(fp: tuple[Harness, str]) -> None:
    h, client_id = fp
    verifier, challenge = pkce()
    h.rpc("tools/call", {"name": "create_account", "arguments": fp_args(client_id, challenge)})
    r = h.rpc(
        "tools/call", {"name": "password_authorize", "arguments": fp_args(client_id, challenge)}
    )
    out = r.json()["result"]["structuredContent"]
    r = h.token(
        grant_type="authorization_code",
        code=out["authorization_code"],
        redirect_uri=f"{AIMD}/oauth/callback",
        client_id=client_id,
        code_verifier=verifier,
    )
    assert r.status_code == 200
    codes = []
    for _ in range(6):
        r = h.rpc(
            "tools/call",
            {
                "name": "password_authorize",
                "arguments": fp_args(client_id, challenge, password="wrong-pass-1"),
            },
        )
        codes.append(r.json()["error"]["data"]["code"])
    assert codes[:5] == ["invalid_credentials"] * 4 + ["invalid_credentials"]
    assert codes[5] == "account_locked"
    # Even the right password is refused while locked.
    r = h.rpc(
        "tools/call", {"name": "password_authorize", "arguments": fp_args(client_id, challenge)}
    )
    assert r.json()["error"]["data"]["code"] == "account_locked"


def test_first_party_rate_limit(fp: tuple[Harness, str]) -> None:
    h, client_id = fp
    _, challenge = pkce()
    errors = []
    for _ in range(11):
        r = h.rpc(
            "tools/call",
            {
                "name": "password_authorize",
                "arguments": fp_args(client_id, challenge, email="x@example.com"),
            },
        )
        errors.append(r.json()["error"])
    assert errors[-1]["code"] == 429
    assert errors[-1]["data"]["code"] == "rate_limited"
    assert errors[-1]["data"]["retryAfterSeconds"] >= 1


def test_provenance_from_origin(fp: tuple[Harness, str]) -> None:
    h, client_id = fp
    _, challenge = pkce()
    args = fp_args(client_id, challenge, provenance="")
    r = h.rpc("tools/call", {"name": "create_account", "arguments": args}, headers={"Origin": AIMD})
    user = r.json()["result"]["structuredContent"]["userId"]
    assert h.container.store.get(UUID(user), Account).provenance == "AIMD"
    args = fp_args(client_id, challenge, provenance="", email="b@example.com")
    r = h.rpc("tools/call", {"name": "create_account", "arguments": args})
    user = r.json()["result"]["structuredContent"]["userId"]
    assert h.container.store.get(UUID(user), Account).provenance == "MCP"


def test_signed_avatar_url(h: Harness) -> None:
    _, tokens = h.full_flow()
    account_id = h.container.accounts.account_id_for_email("ada@example.com")
    assert account_id is not None
    h.container.accounts.change_profile(account_id, avatar_url="/api/files/avatars/x/me.png")
    h.container.runner.catch_up()
    r = h.rpc("tools/call", {"name": "get_profile", "arguments": {}}, token=tokens["access_token"])
    url = r.json()["result"]["structuredContent"]["profile"]["avatar_url"]
    assert url.startswith(f"{PUBLIC}/api/files/avatars/x/me.png?expires=")
    from backline.api.signing import verify_signed_path

    rest = h.client.get(
        "/api/profile", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert rest.json()["profile"]["avatar_url"].split("?")[0] == url.split("?")[0]
    q = parse_qs(urlsplit(url).query)
    secret = h.container.settings.secret_key
    path = "/api/files/avatars/x/me.png"
    assert verify_signed_path(secret, path, q["expires"][0], q["signature"][0])
    assert not verify_signed_path(
        secret, "/api/files/avatars/y/me.png", q["expires"][0], q["signature"][0]
    )
    assert not verify_signed_path(
        secret, path, q["expires"][0], q["signature"][0], now=time.time() + 7200
    )


def test_mcp_rate_limit_is_jsonrpc_429(tmp_path: Path) -> None:
    client, container = build(tmp_path, BACKLINE_RATE_LIMIT_MCP="3 per 60 seconds")
    with client:
        h = Harness(client, container)
        _, tokens = h.full_flow()
        replies = [h.rpc("ping", token=tokens["access_token"], id_=i) for i in range(4)]
        assert [r.status_code for r in replies] == [200, 200, 200, 429]
        assert replies[0].headers["x-ratelimit-limit"] == "3"
        body = replies[3].json()
        assert body["id"] == 3
        assert body["error"]["code"] == 429
        assert body["error"]["data"]["code"] == "rate_limited"
        assert body["error"]["data"]["retryAfterSeconds"] >= 1
        assert int(replies[3].headers["retry-after"]) >= 1


def test_client_name_is_escaped_and_refresh_only_when_registered(h: Harness) -> None:
    h.sign_up()
    r = h.client.post(
        "/oauth/register",
        json={
            "redirect_uris": [REDIRECT],
            "client_name": "<script>alert(1)</script>",
            "grant_types": ["authorization_code"],
        },
    )
    client_id = r.json()["client_id"]
    verifier, challenge = pkce()
    page = h.client.get("/oauth/authorize", params=h.authorize_params(client_id, challenge))
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    code = h.code_for(client_id, challenge)
    tokens = h.exchange(client_id, code, verifier).json()
    assert "refresh_token" not in tokens
    assert h.rpc("ping", token=tokens["access_token"]).status_code == 200


def test_flow_refresh_and_keys_on_both_backends(database_url: str, tmp_path: Path) -> None:
    client, container = build(tmp_path, database_url)
    with client:
        h = Harness(client, container)
        client_id, tokens = h.full_flow()
        r = h.rpc(
            "tools/call", {"name": "get_profile", "arguments": {}}, token=tokens["access_token"]
        )
        assert r.json()["result"]["structuredContent"]["profile"]["email"] == "ada@example.com"
        refreshed = h.token(
            grant_type="refresh_token", refresh_token=tokens["refresh_token"], client_id=client_id
        )
        assert refreshed.status_code == 200
        assert h.rpc("ping", token=refreshed.json()["access_token"]).status_code == 200
        container.runner.catch_up()
        assert [c["client_id"] for c in container.credentials.clients()] == [client_id]
