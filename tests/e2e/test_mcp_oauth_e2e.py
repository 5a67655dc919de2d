"""The official ``mcp`` SDK signs in to a real ``backline serve`` and calls tools.

Its OAuth client provider does the whole dance on its own: 401 challenge → protected
resource metadata (RFC 9728) → authorization server metadata (RFC 8414) → dynamic
registration (RFC 7591) → authorization with PKCE S256 and ``resource`` (RFC 8707) →
token exchange. The redirect handler plays the browser over plain HTTP: it follows the
redirect to the login page, signs in, reads the consent page and its CSRF token, and
allows. Then ``tools/list`` and ``tools/call get_profile``.

A second test walks the same handshake with raw httpx so each header is asserted.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)

from tests.conftest import ServerProcess, start_server

PASSWORD = "correct horse battery staple"
EMAIL = "sdk@example.com"
REDIRECT = "http://127.0.0.1:39999/callback"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(Path(tmp_path_factory.mktemp("mcp-e2e")) / "data")
    yield server
    server.stop()


def sign_up(base: str, email: str) -> None:
    with httpx.Client(base_url=base) as c:
        c.get("/users/log-in")
        r = c.post(
            "/users/register",
            json={"email": email, "password": PASSWORD, "first_name": "Sdk"},
            headers={"x-csrftoken": c.cookies["csrftoken"]},
        )
        assert r.status_code == 201, r.text


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Browser:
    """Follows the authorization URL the way a user's browser would."""

    def __init__(self, email: str) -> None:
        self.email = email
        self.result: AuthorizationCodeResult | None = None
        self.visited: list[str] = []

    def run(self, authorization_url: str) -> None:
        with httpx.Client(follow_redirects=False) as c:
            r = c.get(authorization_url)
            self.visited.append(str(r.url))
            assert r.status_code == 303, r.text  # signed out → login page
            login_url = urljoin(authorization_url, r.headers["location"])
            page = c.get(login_url)
            token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
            assert token
            nxt = parse_qs(urlsplit(login_url).query)["next"][0]
            r = c.post(
                urljoin(authorization_url, "/users/log-in"),
                data={
                    "email": self.email,
                    "password": PASSWORD,
                    "next": nxt,
                    "_csrf_token": token.group(1),
                },
            )
            assert r.status_code == 303, r.text
            consent_url = urljoin(authorization_url, r.headers["location"])
            page = c.get(consent_url)
            assert page.status_code == 200
            assert "once:mcp" in page.text
            fields = dict(
                re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
            )
            fields["decision"] = "allow"
            r = c.post(urljoin(authorization_url, "/oauth/authorize"), data=fields)
            assert r.status_code == 302, r.text
            location = r.headers["location"]
            assert location.startswith(REDIRECT)
            query = parse_qs(urlsplit(location).query)
            self.result = AuthorizationCodeResult(
                code=query["code"][0], state=query.get("state", [None])[0]
            )

    async def redirect_handler(self, authorization_url: str) -> None:
        await anyio.to_thread.run_sync(self.run, authorization_url)

    async def callback_handler(self) -> AuthorizationCodeResult:
        assert self.result is not None
        return self.result


def test_official_sdk_signs_in_and_calls_tools(srv: ServerProcess) -> None:
    sign_up(srv.base_url, EMAIL)
    storage = MemoryStorage()
    browser = Browser(EMAIL)
    provider = OAuthClientProvider(
        server_url=f"{srv.base_url}/api/mcp",
        client_metadata=OAuthClientMetadata(
            client_name="sdk e2e",
            redirect_uris=[REDIRECT],  # type: ignore[list-item]
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        ),
        storage=storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )

    async def session() -> tuple[list[str], Any]:
        async with (
            httpx2.AsyncClient(auth=provider, timeout=30) as http,
            Client(streamable_http_client(f"{srv.base_url}/api/mcp", http_client=http)) as client,
        ):
            tools = await client.list_tools()
            result = await client.call_tool("get_profile", {})
            return [t.name for t in tools.tools], result

    names, result = anyio.run(session)
    assert {"get_profile", "create_account", "password_authorize"} <= set(names)
    assert result.is_error is False
    profile = result.structured_content["profile"]
    assert profile["email"] == EMAIL
    assert profile["first_name"] == "Sdk"
    # The SDK registered itself, got tokens with a refresh token, and sent resource.
    assert storage.client is not None
    assert storage.client.token_endpoint_auth_method == "none"
    assert storage.tokens is not None
    assert storage.tokens.refresh_token
    assert browser.visited
    auth_query = parse_qs(urlsplit(browser.visited[0]).query)
    assert auth_query["resource"] == [f"{srv.base_url}/api/mcp"]
    assert auth_query["code_challenge_method"] == ["S256"]


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_raw_http_handshake_headers(srv: ServerProcess) -> None:
    base = srv.base_url
    mcp_url = f"{base}/api/mcp"
    email = "raw@example.com"
    sign_up(base, email)
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        init = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        }
        # 1. The challenge.
        r = c.post("/api/mcp", json=init, headers={"Accept": "application/json, text/event-stream"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith(
            f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/api/mcp"'
        )
        # 2. Discovery.
        r = c.get("/.well-known/oauth-protected-resource/api/mcp")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        prm = r.json()
        assert prm["resource"] == mcp_url
        issuer = prm["authorization_servers"][0]
        r = c.get("/.well-known/oauth-authorization-server")
        asm = r.json()
        assert asm["issuer"] == issuer == base
        assert asm["code_challenge_methods_supported"] == ["S256"]
        # 3. Registration.
        r = c.post(asm["registration_endpoint"], json={"redirect_uris": [REDIRECT]})
        assert r.status_code == 201
        assert r.headers["content-type"].startswith("application/json")
        assert r.headers["cache-control"] == "no-store"
        client_id = r.json()["client_id"]
        # 4. Authorization: signed out → login, then consent.
        verifier, challenge = _pkce()
        params = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": REDIRECT,
            "state": "xyz",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "resource": mcp_url,
            "scope": "once:mcp",
        }
        r = c.get(asm["authorization_endpoint"], params=params)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/users/log-in?next=%2Foauth%2Fauthorize%3F")
        c.get("/users/log-in")
        r = c.post(
            "/users/log-in",
            data={"email": email, "password": PASSWORD, "_csrf_token": c.cookies["csrftoken"]},
        )
        assert r.status_code == 303
        assert "backline_session" in r.headers["set-cookie"]
        assert "HttpOnly" in r.headers["set-cookie"]
        page = c.get(asm["authorization_endpoint"], params=params)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
        assert token
        r = c.post("/oauth/authorize", data={**fields, "decision": "allow"})
        assert r.status_code == 302
        location = r.headers["location"]
        query = parse_qs(urlsplit(location).query)
        assert location.startswith(REDIRECT + "?")
        assert query["state"] == ["xyz"]
        code = query["code"][0]
        # 5. Token exchange.
        r = c.post(
            asm["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": client_id,
                "code_verifier": verifier,
                "resource": mcp_url,
            },
        )
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["pragma"] == "no-cache"
        tokens = r.json()
        assert tokens["token_type"] == "Bearer"
        assert tokens["expires_in"] == 3600
        access = tokens["access_token"]
        # 6. MCP with the bearer token (no cookies: a fresh client).
    with httpx.Client(base_url=base) as m:
        auth = {
            "Authorization": f"Bearer {access}",
            "Accept": "application/json, text/event-stream",
        }
        r = m.post("/api/mcp", json=init, headers=auth)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        assert "mcp-session-id" not in r.headers
        assert r.headers["x-ratelimit-limit"] == "300"
        assert int(r.headers["x-ratelimit-remaining"]) <= 299
        assert r.json()["result"]["protocolVersion"] == "2025-06-18"
        headers = {**auth, "MCP-Protocol-Version": "2025-06-18"}
        r = m.post(
            "/api/mcp",
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=headers,
        )
        assert r.status_code == 202
        assert r.content == b""
        r = m.post(
            "/api/mcp", json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
        )
        assert r.status_code == 200
        r = m.post(
            "/api/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "get_profile", "arguments": {}},
            },
            headers=headers,
        )
        body = r.json()
        assert body["id"] == 3
        assert body["result"]["structuredContent"]["profile"]["email"] == email
        assert m.get("/api/mcp", headers=auth).status_code == 405
        r = m.post("/api/mcp", json=init, headers={**auth, "Origin": "https://evil.example"})
        assert r.status_code == 403
        r = m.get("/api/profile", headers=auth)
        assert r.status_code == 200
        assert r.json()["profile"]["email"] == email
