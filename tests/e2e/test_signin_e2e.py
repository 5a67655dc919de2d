"""A real `backline serve` process over HTTP: register, log in, profile, log out."""

from __future__ import annotations

import json

import httpx

from tests.conftest import ServerProcess

PASSWORD = "correct horse battery staple"


def form_token(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200
    assert 'name="_csrf_token"' in page.text
    token = client.cookies.get("csrftoken")
    assert token
    return token


def test_browser_flow_against_real_server(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.base_url, follow_redirects=False, timeout=10) as client:
        assert client.get("/health").json() == {"status": "ok"}

        token = form_token(client, "/users/register")
        r = client.post(
            "/users/register",
            data={
                "email": "ada@example.com",
                "password": PASSWORD,
                "first_name": "Ada",
                "last_name": "Lovelace",
                "_csrf_token": token,
            },
        )
        assert r.status_code == 303, r.text
        assert r.headers["location"] == "/users/settings"
        settings_page = client.get("/users/settings")
        assert "ada@example.com" in settings_page.text

        # Log out (DELETE with the CSRF header), then the profile is gone.
        r = client.request("DELETE", "/users/log-out", headers={"x-csrftoken": token})
        assert r.status_code == 200
        assert client.get("/api/profile").status_code == 401

        # Log in through the form and read the profile.
        token = form_token(client, "/users/log-in")
        r = client.post(
            "/users/log-in",
            data={"email": "ADA@example.com", "password": PASSWORD, "_csrf_token": token},
        )
        assert r.status_code == 303
        profile = client.get("/api/profile").json()["profile"]
        assert profile["email"] == "ada@example.com"
        assert profile["first_name"] == "Ada"
        assert profile["is_admin"] is False

        # Log out through the HTML form too.
        r = client.post("/users/log-out", data={"_csrf_token": token})
        assert r.status_code == 303
        assert client.get("/api/profile").status_code == 401

    # Structured logs: one JSON object per line, each with a request id, no secrets.
    lines = [json.loads(line) for line in server.logs().splitlines() if line.startswith("{")]
    requests = [entry for entry in lines if entry.get("event") == "http_request"]
    assert requests
    assert all(entry.get("request_id") for entry in requests)
    profile_reads = [e for e in requests if e["path"] == "/api/profile" and e["status"] == 200]
    assert profile_reads
    assert all(e["principal"] == profile["id"] for e in profile_reads)
    assert PASSWORD not in server.logs()


def test_sign_in_pages_render(server: ServerProcess) -> None:
    for path in ("/users/register", "/users/log-in"):
        r = httpx.get(server.base_url + path, timeout=10)
        assert r.status_code == 200
        assert "text/html" in r.headers["content-type"]
    r = httpx.get(server.base_url + "/users/settings", timeout=10, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/users/log-in")
