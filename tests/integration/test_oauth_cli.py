"""``backline oauth clients list|revoke`` and ``backline tokens issue`` (escape hatch)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from litestar.testing import TestClient

from backline.api.app import create_app
from backline.infra.asgi import api_config
from backline.infra.cli import main
from backline.infra.container import Container
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"


def test_tokens_issue_and_client_admin(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    settings = make_settings(url, tmp_path)
    c = Container.build(settings)
    c.accounts.register("ops@example.com", PASSWORD)
    client = c.oauth.register_client(["http://127.0.0.1:7/cb"], "Claude")
    c.close()
    env = {
        "BACKLINE_DATA_DIR": str(tmp_path),
        "BACKLINE_DATABASE_URL": url,
        "BACKLINE_SECRET_KEY": settings.secret_key,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
    }
    runner = CliRunner()

    r = runner.invoke(main, ["tokens", "issue", "ops@example.com", "--scope", "once:mcp"], env=env)
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("blat_")
    r = runner.invoke(main, ["tokens", "issue", "nobody@example.com"], env=env)
    assert r.exit_code != 0
    assert "no account" in r.output
    r = runner.invoke(main, ["tokens", "issue", "ops@example.com", "--scope", "root"], env=env)
    assert r.exit_code != 0
    assert "invalid_scope" in r.output

    r = runner.invoke(main, ["oauth", "clients", "list"], env=env)
    assert r.exit_code == 0, r.output
    assert client.client_id in r.output
    assert "active" in r.output
    assert "Claude" in r.output

    # The printed token works at the MCP endpoint.
    c = Container.build(settings)
    app = create_app(c, api_config(settings), start_background=False)
    with TestClient(app) as http:
        resp = http.post(
            "/api/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "get_profile", "arguments": {}},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert resp.status_code == 200
        assert resp.json()["result"]["structuredContent"]["profile"]["email"] == "ops@example.com"

    r = runner.invoke(main, ["oauth", "clients", "revoke", client.client_id], env=env)
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["oauth", "clients", "list"], env=env)
    assert "revoked" in r.output
    r = runner.invoke(main, ["oauth", "clients", "revoke", "unknown"], env=env)
    assert r.exit_code != 0
    c = Container.build(settings)
    try:
        assert c.oauth.get_client(client.client_id) is None
    finally:
        c.close()
