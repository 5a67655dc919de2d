"""Sign-in routes through the real ASGI app: bad input gets typed errors, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar.testing import TestClient

from backline.api.app import create_app
from backline.infra.asgi import api_config
from backline.infra.container import Container
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:  # type: ignore[type-arg]
    settings = make_settings(f"sqlite:///{tmp_path / 'b.db'}", tmp_path)
    container = Container.build(settings)
    app = create_app(container, api_config(settings), start_background=False)
    with TestClient(app) as c:
        yield c


def csrf(client: TestClient) -> str:  # type: ignore[type-arg]
    client.get("/users/log-in")
    token = client.cookies.get("csrftoken")
    assert token
    return token


def post_json(client: TestClient, path: str, body: object, **kw: object):  # type: ignore[type-arg,no-untyped-def]
    token = csrf(client)
    return client.post(path, json=body, headers={"x-csrftoken": token}, **kw)


def test_health(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/health").json() == {"status": "ok"}
    verbose = client.get("/health?verbose=1").json()
    assert verbose["event_store"]["backend"] == "sqlite"
    assert "profiles" in verbose["projections"]


def test_request_id_echoed_and_generated(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/health", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = client.get("/health", headers={"x-request-id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"
    assert len(r.headers["x-request-id"]) == 32


def test_register_json_then_profile(client: TestClient) -> None:  # type: ignore[type-arg]
    r = post_json(
        client,
        "/users/register",
        {"email": "ada@example.com", "password": PASSWORD, "first_name": "Ada"},
    )
    assert r.status_code == 201, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    profile = client.get("/api/profile").json()["profile"]
    assert profile["email"] == "ada@example.com"
    assert profile["first_name"] == "Ada"
    assert profile["created_at"].endswith("Z")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "not-an-email", "password": PASSWORD}, 422, "invalid_email"),
        ({"email": "a@example.com", "password": "short"}, 422, "weak_password"),
        (
            {"email": "a@example.com", "password": PASSWORD, "first_name": "x" * 200},
            422,
            "invalid_field",
        ),
        ({"email": "a@example.com", "password": "p" * 5000}, 422, "field_too_long"),
        ({"email": ["a@example.com"], "password": PASSWORD}, 422, "invalid_field"),
    ],
)
def test_register_bad_input_is_typed(
    client: TestClient,  # type: ignore[type-arg]
    body: dict[str, object],
    status: int,
    code: str,
) -> None:
    r = post_json(client, "/users/register", body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_malformed_json_is_typed(client: TestClient) -> None:  # type: ignore[type-arg]
    token = csrf(client)
    r = client.post(
        "/users/register",
        content=b'{"email": ',
        headers={"content-type": "application/json", "x-csrftoken": token},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_json"
    r = client.post(
        "/users/register",
        content=b"[1,2]",
        headers={"content-type": "application/json", "x-csrftoken": token},
    )
    assert r.json()["error"]["code"] == "invalid_json"


def test_duplicate_registration(client: TestClient) -> None:  # type: ignore[type-arg]
    body = {"email": "ada@example.com", "password": PASSWORD}
    assert post_json(client, "/users/register", body).status_code == 201
    r = post_json(client, "/users/register", body)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "email_taken"


def test_csrf_missing_is_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.post("/users/register", json={"email": "a@example.com", "password": PASSWORD})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "csrf_failed"
    # A form post without the token is refused too, with an HTML page for browsers.
    r = client.post(
        "/users/log-in",
        data={"email": "a@example.com", "password": PASSWORD},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 403
    assert "csrf_failed" in r.text


def test_html_form_errors_rerender_the_form(client: TestClient) -> None:  # type: ignore[type-arg]
    token = csrf(client)
    r = client.post(
        "/users/register",
        data={"email": "bad", "password": PASSWORD, "_csrf_token": token},
        headers={"accept": "text/html"},
    )
    assert r.status_code == 422
    assert 'data-code="invalid_email"' in r.text
    assert "<form" in r.text


def test_wrong_password_then_lockout(client: TestClient) -> None:  # type: ignore[type-arg]
    post_json(client, "/users/register", {"email": "ada@example.com", "password": PASSWORD})
    client.cookies.clear()
    for _ in range(5):
        r = post_json(client, "/users/log-in", {"email": "ada@example.com", "password": "nope" * 3})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_credentials"
    r = post_json(client, "/users/log-in", {"email": "ada@example.com", "password": PASSWORD})
    assert r.status_code == 423
    assert r.json()["error"]["code"] == "account_locked"
    assert int(r.headers["retry-after"]) > 0


def test_profile_requires_sign_in(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/api/profile")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    client.cookies.set("backline_session", "forged-token")
    assert client.get("/api/profile").status_code == 401


def test_settings_update_and_open_redirect_guard(client: TestClient) -> None:  # type: ignore[type-arg]
    token = csrf(client)
    r = client.post(
        "/users/register",
        data={
            "email": "ada@example.com",
            "password": PASSWORD,
            "next": "//evil.example.com/",
            "_csrf_token": token,
        },
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/users/settings"
    r = client.put(
        "/users/settings",
        json={"first_name": "Augusta", "last_name": "King"},
        headers={"x-csrftoken": token},
    )
    assert r.status_code == 200, r.text
    assert r.json()["profile"]["first_name"] == "Augusta"
    r = client.put(
        "/users/settings",
        json={"current_password": "wrong password", "new_password": "another long passphrase"},
        headers={"x-csrftoken": token},
    )
    assert r.status_code == 401
    page = client.get("/users/settings")
    assert "Augusta" in page.text


def test_unknown_route_and_method(client: TestClient) -> None:  # type: ignore[type-arg]
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = client.patch("/health")
    assert r.status_code == 405


def test_oversized_body_refused(client: TestClient) -> None:  # type: ignore[type-arg]
    token = csrf(client)
    r = client.post(
        "/users/register",
        content=b"x" * (2 * 1024 * 1024),
        headers={"content-type": "application/json", "x-csrftoken": token},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "payload_too_large"


def test_openapi_is_31(client: TestClient) -> None:  # type: ignore[type-arg]
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/profile" in doc["paths"]
    assert "/users/log-in" in doc["paths"]
