"""Credits over HTTP against a real ``backline serve`` (sandbox payments provider).

REST with a session cookie, MCP tools with a bearer token, the sandbox hosted checkout
page, and Stripe-signed webhooks (``stripe.WebhookSignature.generate_signature_header``)
hitting the real ``/api/stripe/webhook`` endpoint; auto-reload runs in the server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import stripe

from backline.adapters.sandbox_payments import sandbox_webhook_secret
from tests.conftest import ROOT, ServerProcess, start_server

SECRET = "e2e-credits-secret-key-" + "y" * 32
PASSWORD = "correct horse battery staple"
EMAIL = "credits@example.com"


class World:
    def __init__(self, server: ServerProcess, data_dir: Path) -> None:
        self.server = server
        self.web = httpx.Client(base_url=server.base_url, timeout=20)
        self.web.get("/users/log-in")
        self.csrf = self.web.cookies["csrftoken"]
        r = self.web.post(
            "/users/register",
            json={"email": EMAIL, "password": PASSWORD, "first_name": "Cred"},
            headers={"x-csrftoken": self.csrf},
        )
        assert r.status_code == 201, r.text
        self.account_id = self.web.get("/api/profile").json()["profile"]["id"]
        env = {
            **os.environ,
            "BACKLINE_DATA_DIR": str(data_dir),
            "BACKLINE_SECRET_KEY": SECRET,
            "BACKLINE_PUBLIC_URL": server.base_url,
        }
        out = subprocess.run(
            [sys.executable, "-m", "backline.infra.cli", "tokens", "issue", EMAIL],
            env=env,
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        self.bearer = out.stdout.strip().splitlines()[0]
        self.mcp = httpx.Client(
            base_url=server.base_url,
            timeout=20,
            headers={
                "Authorization": f"Bearer {self.bearer}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-06-18",
            },
        )
        self._id = 0

    def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        self._id += 1
        r = self.mcp.post(
            "/api/mcp",
            json={
                "jsonrpc": "2.0",
                "id": self._id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            },
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def tool(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        body = self.call(tool, arguments)
        assert "result" in body, body
        assert not body["result"].get("isError"), body
        result: dict[str, Any] = body["result"]["structuredContent"]
        return result

    def webhook(self, event: dict[str, Any], secret: str | None = None) -> httpx.Response:
        payload = msgspec.json.encode(event).decode()
        sig = stripe.WebhookSignature.generate_signature_header(
            payload, secret or sandbox_webhook_secret(SECRET)
        )
        return httpx.post(
            f"{self.server.base_url}/api/stripe/webhook",
            content=payload,
            headers={"Stripe-Signature": sig, "Content-Type": "application/json"},
            timeout=20,
        )

    def balance(self) -> int:
        return int(self.web.get("/api/credits").json()["balance"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir = Path(tmp_path_factory.mktemp("credits-e2e")) / "data"
    server = start_server(data_dir, {"BACKLINE_SECRET_KEY": SECRET})
    w = World(server, data_dir)
    yield w
    w.web.close()
    w.mcp.close()
    server.stop()


def test_pricing_is_public_and_complete(world: World) -> None:
    body = httpx.get(f"{world.server.base_url}/v1/pricing").json()
    assert body["creditPrice"] == 100
    assert body["perSong"]["human"] == 1
    assert body["perSong"]["aiDetected"] == 2
    assert body["tokenOffset"]["credits"] == 1
    assert [b["packageId"] for b in body["bundles"]][:1] == ["credits_10"]
    assert body["bundles"][-1]["packageId"] == "credits_500"
    assert body["autoReload"]["defaultThreshold"] == 0
    assert world.tool("get_pricing", {}) == body


def test_tools_are_listed_with_schemas(world: World) -> None:
    r = world.mcp.post("/api/mcp", json={"jsonrpc": "2.0", "id": 99, "method": "tools/list"})
    tools = {t["name"]: t for t in r.json()["result"]["tools"]}
    for name in (
        "get_pricing",
        "get_credits",
        "create_credit_checkout_session",
        "get_autoreload",
        "set_autoreload",
    ):
        assert tools[name]["outputSchema"]["type"] == "object", name
    checkout = tools["create_credit_checkout_session"]["inputSchema"]["properties"]
    assert set(checkout["uiMode"]["enum"]) == {"hosted", "embedded"}
    assert "transactionLimit" in tools["get_credits"]["inputSchema"]["properties"]


def test_credits_need_a_principal_and_a_sane_limit(world: World) -> None:
    assert httpx.get(f"{world.server.base_url}/api/credits").status_code == 401
    empty = world.web.get("/api/credits").json()
    assert empty["aggregates"] == {"usedTotal": 0, "purchasedTotal": 0}
    assert world.web.get("/api/credits?transactionLimit=101").status_code == 422
    bad = world.call("get_credits", {"transactionLimit": -1})
    assert bad.get("error") or bad["result"].get("isError")


def test_checkout_tool_embedded_and_bad_input(world: World) -> None:
    out = world.tool("create_credit_checkout_session", {"credits": 5, "provenance": "AIMD"})
    assert out["clientSecret"].startswith(out["sessionId"])
    assert out["publishableKey"] == "pk_sandbox_backline"
    assert (out["amount"], out["currency"], out["credits"], out["provider"]) == (
        500,
        "usd",
        5,
        "sandbox",
    )
    assert out["expiresAt"].endswith("Z")
    assert "url" not in out
    for bad in (
        {"credits": 0},
        {"credits": 1001},
        {"credits": -3},
        {"credits": 2.5},
        {"packageId": "credits_7"},
        {},
    ):
        body = world.call("create_credit_checkout_session", bad)
        assert body.get("error") or body["result"].get("isError"), (bad, body)


def test_sandbox_hosted_checkout_grants_and_saves_the_card(world: World) -> None:
    out = world.tool(
        "create_credit_checkout_session",
        {
            "packageId": "credits_10",
            "uiMode": "hosted",
            "savePaymentMethod": True,
            "successPath": "/done",
        },
    )
    assert out["url"].startswith(f"{world.server.base_url}/sandbox/checkout/cs_sandbox_")
    assert "clientSecret" not in out
    assert out["amount"] == 1000
    with httpx.Client(base_url=world.server.base_url, timeout=20) as buyer:
        page = buyer.get(out["url"])
        assert page.status_code == 200
        assert "Sandbox payments" in page.text
        r = buyer.post(
            out["url"],
            data={"card": "visa", "_csrf_token": buyer.cookies["csrftoken"]},
        )
        assert r.status_code == 303
        assert (
            r.headers["location"] == f"{world.server.base_url}/done?session_id={out['sessionId']}"
        )
        again = buyer.post(
            out["url"],
            data={"card": "visa", "_csrf_token": buyer.cookies["csrftoken"]},
            headers={"Accept": "application/json"},
        )
        assert again.status_code == 422
    credits = world.tool("get_credits", {"transactionLimit": 1})
    assert credits["balance"] == 10
    assert credits["transactions"][0]["type"] == "purchase"
    assert credits["transactions"][0]["ref"] == f"checkout:{out['sessionId']}"
    auto = world.tool("get_autoreload", {})
    assert auto["paymentMethod"]["last4"] == "4242"
    assert auto["enabled"] is False


def checkout_event(
    world: World, event_id: str, session: str, credits: int, user: str | None = None
) -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": "checkout.session.completed",
        "data": {
            "object": {
                "id": session,
                "object": "checkout.session",
                "payment_status": "paid",
                "status": "complete",
                "amount_total": credits * 100,
                "currency": "usd",
                "payment_intent": f"pi_{session}",
                "metadata": {
                    "user_id": user or world.account_id,
                    "credits": str(credits),
                    "source": "aimd",
                },
            }
        },
    }


def test_signed_webhooks_on_the_real_endpoint(world: World) -> None:
    before = world.balance()
    event = checkout_event(world, "evt_e2e_1", "cs_e2e_1", 7)
    r = world.webhook(event)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "granted"
    assert world.balance() == before + 7
    assert world.webhook(event).json()["outcome"] == "duplicate"  # replayed
    # Bad signature: 400, nothing changes.
    r = world.webhook(checkout_event(world, "evt_e2e_2", "cs_e2e_2", 50), secret="whsec_wrong")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_signature"
    r = httpx.post(f"{world.server.base_url}/api/stripe/webhook", content=b"{}", timeout=20)
    assert r.status_code == 400
    assert world.balance() == before + 7
    # Unknown user and unknown event types are acknowledged and ignored.
    r = world.webhook(
        checkout_event(
            world, "evt_e2e_3", "cs_e2e_3", 5, user="00000000-0000-4000-8000-000000000000"
        )
    )
    assert (r.status_code, r.json()["outcome"]) == (200, "ignored_unknown_user")
    r = world.webhook(
        {"id": "evt_e2e_4", "type": "invoice.paid", "data": {"object": {"id": "in_1"}}}
    )
    assert (r.status_code, r.json()["outcome"]) == (200, "ignored")
    assert world.balance() == before + 7


def test_autoreload_rest_then_a_dispute_triggers_one_reload(world: World) -> None:
    csrf = {"x-csrftoken": world.csrf}
    r = world.web.post("/v1/me/autoreload", json={"enabled": True, "threshold": 1001}, headers=csrf)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_threshold"
    r = world.web.post("/v1/me/autoreload", json={"enabled": True, "quantity": 0}, headers=csrf)
    assert r.status_code == 422
    assert world.web.post("/v1/me/autoreload", json={"enabled": True}).status_code == 403  # CSRF
    balance = world.balance()
    assert balance == 17  # 10 (sandbox bundle) + 7 (webhook purchase)
    r = world.web.post(
        "/v1/me/autoreload",
        json={"enabled": True, "packageId": "credits_25", "threshold": 10},
        headers=csrf,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["credits"], r.json()["threshold"]) == (True, 25, 10)
    assert world.web.get("/v1/me/autoreload").json() == world.tool("get_autoreload", {})
    # A dispute on the webhook purchase takes its 7 credits back: 17 -> 10, the threshold.
    dispute = {
        "id": "evt_dp_1",
        "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "payment_intent": "pi_cs_e2e_1"}},
    }
    assert world.webhook(dispute).json()["outcome"] == "reversed"
    assert world.webhook(dispute).json()["outcome"] == "duplicate"
    # The server's auto-reload process manager charges the saved card once.
    deadline = time.monotonic() + 20
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = world.web.get("/v1/me/autoreload").json()
        if status["lastStatus"] and status["lastStatus"]["status"] != "pending":
            break
        time.sleep(0.2)
    assert status["lastStatus"]["status"] == "succeeded", status
    credits = world.tool("get_credits", {"transactionLimit": 100})
    assert credits["balance"] == 35
    reloads = [t for t in credits["transactions"] if t["ref"].startswith("autoreload:")]
    assert [t["amount"] for t in reloads] == [25]
    types = [t["type"] for t in credits["transactions"]]
    assert types[:2] == ["purchase", "reversal"]
