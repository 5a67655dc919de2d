"""Agent licensing end to end: a real ``backline serve`` with the 5,000-track demo catalog
and its in-process dev chain; real clients (httpx, eth-account, the PyPI ``x402`` SDK).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_abi import encode as abi_encode
from eth_account import Account

from tests.conftest import ROOT, ServerProcess, start_server

AGENT = "/api/v1/agent"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("agent") / "data"
    server = start_server(
        data,
        {
            "BACKLINE_DEMO_CATALOG_TRACKS": "5000",  # the embedded default's first run
            "BACKLINE_RATE_LIMIT_AGENT_SEARCH": "10000 per 60 seconds",
            "BACKLINE_RATE_LIMIT_AGENT_LICENSE": "10000 per 60 seconds",
        },
    )
    server.data_dir = data  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            meta = httpx.get(f"{server.base_url}{AGENT}/catalog/search").json()["meta"]
            if meta["total"] >= 5000:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"demo catalog did not load:\n{server.logs()[-3000:]}")
        yield server
    finally:
        server.stop()


def _dev(srv: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    token = (srv.data_dir / "dev_chain_token").read_text().strip()  # type: ignore[attr-defined]
    r = httpx.request(
        method,
        f"{srv.base_url}/dev-chain{path}",
        json=body,
        headers={"X-Dev-Chain-Token": token},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _cli(srv: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "BACKLINE_DATA_DIR": str(srv.data_dir),  # type: ignore[attr-defined]
        "BACKLINE_PUBLIC_URL": srv.base_url,
    }
    return subprocess.run(
        [sys.executable, "-m", "backline.infra.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
    )


def _poll(srv: ServerProcess, payment_id: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        r = httpx.get(f"{srv.base_url}{AGENT}/license/verify/{payment_id}")
        if r.status_code != 202 or time.monotonic() > deadline:
            return r
        assert r.json()["retry_after"] == "5 seconds"
        time.sleep(0.5)


# -- catalog -----------------------------------------------------------------------------------


def test_search_and_paginate_the_demo_catalog(srv: ServerProcess) -> None:
    base = f"{srv.base_url}{AGENT}/catalog/search"
    first = httpx.get(base, params={"per_page": 50}).json()
    assert first["meta"] == {
        "total": 5000,
        "per_page": 50,
        "current_page": 1,
        "last_page": 100,
        "fallback": False,
        "relaxed_filters": [],
    }
    seen: set[int] = set()
    for page in (1, 2, 100):
        body = httpx.get(base, params={"per_page": 50, "page": page}).json()
        ids = [t["id"] for t in body["data"]]
        assert len(ids) == 50
        assert not seen & set(ids)
        seen |= set(ids)
    assert httpx.get(base, params={"per_page": 50, "page": 101}).json()["data"] == []
    track = first["data"][0]
    for field in (
        "id",
        "title",
        "duration",
        "artists",
        "genre",
        "subgenre",
        "additional_genres",
        "mood",
        "tempo",
        "bpm",
        "key",
        "instrumental",
        "keywords",
        "description",
        "artwork_url",
        "preview_url",
        "formats_available",
        "license_options",
        "license_purchase_url",
    ):
        assert field in track
    assert track["demo"] is True
    assert track["license_options"]["social_media"]["price_usdc"].count(".") == 1

    rock = httpx.get(
        base,
        params={
            "genre": "rock",
            "bpm_min": 100,
            "bpm_max": 130,
            "instrumental": "Yes",
            "per_page": 50,
        },
    ).json()
    assert rock["meta"]["total"] > 0
    for t in rock["data"]:
        assert t["genre"] == "Rock"
        assert 100 <= t["bpm"] <= 130
        assert t["instrumental"] is True

    described = httpx.get(base, params={"description": "epic orchestral trailer"}).json()
    assert described["meta"]["total"] > 0
    top = described["data"][0]
    text = " ".join([top["description"], top["keywords"] or "", top["subgenre"], top["mood"]])
    assert any(w in text.lower() for w in ("epic", "orchestral", "trailer"))

    only = httpx.get(base, params={"license_type": "all_digital", "per_page": 1}).json()
    assert list(only["data"][0]["license_options"]) == ["all_digital"]

    relaxed = httpx.get(base, params={"genre": "Rock", "mood": "NoSuchMood"}).json()
    assert relaxed["meta"]["fallback"] is True
    assert relaxed["meta"]["relaxed_filters"] == ["mood"]
    assert all(t["genre"] == "Rock" for t in relaxed["data"])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"per_page": 51}, "per_page"),
        ({"per_page": 0}, "per_page"),
        ({"page": 0}, "page"),
        ({"bpm_min": 301}, "bpm_min"),
        ({"bpm_max": "fast"}, "bpm_max"),
        ({"instrumental": "yes"}, "instrumental"),
        ({"license_type": "tv"}, "license_type"),
        ({"genre": "x" * 101}, "genre"),
        ({"key": "C" * 21}, "key"),
        ({"description": "d" * 201}, "description"),
        ({"bpm_min": 150, "bpm_max": 100}, "bpm_max"),
    ],
)
def test_search_validation_errors(srv: ServerProcess, params: dict[str, Any], field: str) -> None:
    r = httpx.get(f"{srv.base_url}{AGENT}/catalog/search", params=params)
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "Validation failed."
    assert field in body["details"]


def test_track_detail_and_404(srv: ServerProcess) -> None:
    r = httpx.get(f"{srv.base_url}{AGENT}/catalog/tracks/42")
    assert r.status_code == 200
    assert r.json()["data"]["id"] == 42
    assert r.json()["licensing"]["chain_id"] == 8453
    for bad in ("999999", "abc", "-1"):
        r = httpx.get(f"{srv.base_url}{AGENT}/catalog/tracks/{bad}")
        assert r.status_code == 404
        assert r.json() == {"error": "Track not found or not available for licensing."}


def test_ai_search(srv: ServerProcess) -> None:
    phrase = "I need an upbeat indie rock track for a TV commercial, instrumental, 110-140 bpm"
    r = httpx.post(f"{srv.base_url}{AGENT}/ai-search", json={"phrase": phrase, "per_page": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["ai"]["original_phrase"] == phrase
    params = body["ai"]["translated_params"]
    assert params["genre"] == "Rock"
    assert params["subgenre"] == "Indie"
    assert (params["bpm_min"], params["bpm_max"]) == (110, 140)
    assert params["instrumental"] == "Yes"
    assert "commercial" in params["description"]
    assert body["meta"]["per_page"] == 5
    assert len(body["data"]) <= 5
    assert httpx.post(f"{srv.base_url}{AGENT}/ai-search", json={}).status_code == 422
    assert (
        httpx.post(
            f"{srv.base_url}{AGENT}/ai-search", json={"phrase": "x", "per_page": 500}
        ).status_code
        == 422
    )


# -- licensing ---------------------------------------------------------------------------------


def test_license_by_plain_usdc_transfer(srv: ServerProcess, tmp_path: Path) -> None:
    payer = Account.create()
    info = _dev(srv, "GET", "/info")
    _dev(srv, "POST", "/fund", {"wallet": payer.address, "amount": "50"})
    r = httpx.post(
        f"{srv.base_url}{AGENT}/license/7/social_media", json={"paying_wallet": payer.address}
    )
    assert r.status_code == 402, r.text
    body = r.json()
    details = body["payment"]["payment_details"]
    assert details["chain"] == "base"
    assert details["chain_id"] == 8453
    assert details["token_contract"] == info["usdc"]
    assert details["paying_wallet"] == payer.address
    required = json.loads(base64.b64decode(r.headers["PAYMENT-REQUIRED"]))
    assert required["x402Version"] == 2
    accept = required["accepts"][0]
    assert accept["scheme"] == "exact"
    assert accept["network"] == "eip155:8453"
    assert accept["payTo"] == details["receiving_address"]
    assert accept["asset"] == info["usdc"]
    assert body["accepts"] == required["accepts"]
    payment_id = body["payment"]["payment_id"]
    amount = int(details["amount_units"])
    assert accept["amount"] == str(amount)
    assert _poll(srv, payment_id, timeout=0).status_code == 202

    # The payer signs a plain USDC transfer with its own key; the server only relays it.
    account = _dev(srv, "GET", f"/accounts/{payer.address}")
    data = (
        "0xa9059cbb"
        + abi_encode(["address", "uint256"], [details["receiving_address"], amount]).hex()
    )
    tx = {
        "to": info["usdc"],
        "data": data,
        "value": 0,
        "gas": 100_000,
        "gasPrice": info["gas_price_wei"],
        "nonce": account["nonce"],
        "chainId": 8453,
    }
    raw = "0x" + payer.sign_transaction(tx).raw_transaction.hex().removeprefix("0x")
    assert _dev(srv, "POST", "/send-raw", {"raw_tx": raw})["status"] == 1

    r = _poll(srv, payment_id)
    assert r.status_code == 200, r.text
    issued = r.json()
    assert issued["status"] == "license_issued"
    assert issued["payment_id"] == payment_id
    doc = issued["license_document"]
    assert doc["payment"]["payer"] == payer.address
    assert doc["track"]["id"] == 7
    assert doc["signature"]
    assert doc["payees"]

    # The signed link downloads real audio; a tampered one does not.
    wav = issued["downloads"]["wav"]
    assert wav
    assert issued["downloads"]["mp3"] is None
    got = httpx.get(wav)
    assert got.status_code == 200
    assert got.content[:4] == b"RIFF"
    assert httpx.get(wav.replace("signature=", "signature=0")).status_code == 404
    expired = wav.split("expires=")[0] + "expires=1000&signature=" + wav.split("signature=")[1]
    assert httpx.get(expired).status_code == 404  # the signature covers the expiry

    # `backline licenses verify` accepts the document and refuses a tampered copy.
    good = tmp_path / "license.json"
    good.write_text(json.dumps(issued))
    ok = _cli(srv, "licenses", "verify", str(good))
    assert ok.returncode == 0, ok.stderr
    doc["license"]["territories"] = "only mars"
    bad = tmp_path / "tampered.json"
    bad.write_text(json.dumps(doc))
    assert _cli(srv, "licenses", "verify", str(bad)).returncode == 1


def test_license_with_the_x402_sdk_over_x_payment(srv: ServerProcess) -> None:
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.evm.exact import register_exact_evm_client

    payer = Account.create()
    _dev(srv, "POST", "/fund", {"wallet": payer.address, "amount": "100"})
    usdc = _dev(srv, "GET", "/info")["usdc"]
    client = x402Client()
    register_exact_evm_client(client, payer)
    # The dev chain's test USDC is not one of the SDK's default assets: the agent opts in
    # to it explicitly, with a cap, as an agent would for any non-default token.
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": "base", "asset": usdc, "max_amount_per_payment": "50000000"},
            ]
        }
    )

    async def buy() -> httpx.Response:
        async with x402HttpxClient(client, timeout=60) as http:
            return await http.post(
                f"{srv.base_url}{AGENT}/license/11/all_digital?x402_version=1",
                json={"paying_wallet": payer.address},
            )

    r = asyncio.run(buy())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "license_issued"
    settle = json.loads(base64.b64decode(r.headers["X-PAYMENT-RESPONSE"]))
    assert settle["success"] is True
    assert settle["payer"] == payer.address
    assert settle["transaction"] == body["license_document"]["payment"]["tx_hash"]
    assert body["license_document"]["payment"]["method"] == "x402"
    verify = httpx.get(f"{srv.base_url}{AGENT}/license/verify/{body['payment_id']}")
    assert verify.status_code == 200
    account = _dev(srv, "GET", f"/accounts/{payer.address}")
    paid = int(body["license_document"]["payment"]["amount_units"])
    assert account["usdc_units"] == 100_000_000 - paid


def test_license_with_the_x402_sdk_over_payment_signature_v2(srv: ServerProcess) -> None:
    from x402 import x402Client
    from x402.http.clients import x402HttpxClient
    from x402.mechanisms.evm.exact import register_exact_evm_client

    payer = Account.create()
    _dev(srv, "POST", "/fund", {"wallet": payer.address, "amount": "100"})
    usdc = _dev(srv, "GET", "/info")["usdc"]
    client = x402Client()
    register_exact_evm_client(client, payer)
    client.set_spend_controls(
        {
            "allowed_assets": [
                {"network": "eip155:8453", "asset": usdc, "max_amount_per_payment": "50000000"}
            ]
        }
    )

    async def buy() -> httpx.Response:
        async with x402HttpxClient(client, timeout=60) as http:
            return await http.post(f"{srv.base_url}{AGENT}/license/13/social_media", json={})

    r = asyncio.run(buy())
    assert r.status_code == 200, r.text
    assert "X-PAYMENT-RESPONSE" not in r.headers
    settle = json.loads(base64.b64decode(r.headers["PAYMENT-RESPONSE"]))
    assert settle["success"] is True
    assert settle["network"] == "eip155:8453"
    assert settle["payer"] == payer.address
    assert r.json()["license_document"]["payment"]["payer"] == payer.address


def test_bad_x402_header_is_answered_402(srv: ServerProcess) -> None:
    junk = base64.b64encode(
        json.dumps({"x402Version": 1, "scheme": "exact", "network": "base", "payload": {}}).encode()
    ).decode()
    r = httpx.post(f"{srv.base_url}{AGENT}/license/11/social_media", headers={"X-PAYMENT": junk})
    assert r.status_code == 402
    assert r.json()["error"] == "invalid_payload"


def test_dev_chain_cli_fund_and_pay(srv: ServerProcess) -> None:
    payer = Account.create()
    r = httpx.post(
        f"{srv.base_url}{AGENT}/license/12/social_media", json={"paying_wallet": payer.address}
    )
    payment_id = r.json()["payment"]["payment_id"]
    funded = _cli(srv, "dev-chain", "fund", payer.address, "3.5")
    assert funded.returncode == 0, funded.stderr
    assert "minted 3.5 USDC" in funded.stdout
    refused = _cli(srv, "dev-chain", "pay", payment_id)  # not a dev account: needs the key
    assert refused.returncode != 0
    assert "private" in refused.stderr
    paid = _cli(srv, "dev-chain", "pay", payment_id, "--private-key", payer.key.hex())
    assert paid.returncode == 0, paid.stderr
    # The server's chain watcher issues the license by itself, before anyone polls.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = _cli(srv, "events", "tail", "--limit", "200").stdout
        if any(
            "backline.License.Issued" in line and payment_id in line for line in log.splitlines()
        ):
            break
        time.sleep(1)
    else:
        pytest.fail("the watcher did not issue the license")
    assert _poll(srv, payment_id, timeout=0).status_code == 200


def test_license_errors(srv: ServerProcess) -> None:
    base = f"{srv.base_url}{AGENT}/license"
    r = httpx.post(f"{base}/999999/social_media", json={})
    assert r.status_code == 404
    assert r.json() == {"error": "Track not found or not available for licensing."}
    r = httpx.post(f"{base}/1/tv_broadcast", json={})
    assert r.status_code == 422
    assert "license_type" in r.json()["details"]
    r = httpx.post(f"{base}/1/social_media", json={"paying_wallet": "0x123"})
    assert r.status_code == 422
    assert "paying_wallet" in r.json()["details"]
    r = httpx.post(f"{base}/1/social_media?mode=gpt", json={})
    assert r.status_code == 200
    assert r.json()["status"] == "payment_required"
    r = httpx.get(f"{base}/verify/5a1c2c1e-7d2e-4a5e-9a8e-0c1b2d3e4f50")
    assert r.status_code == 404
    assert r.json() == {"error": "Payment ID not found."}
    # The dev chain is not reachable without the token from the data dir.
    assert httpx.get(f"{srv.base_url}/dev-chain/info").status_code == 404


def test_rate_limits_per_ip(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        {
            "BACKLINE_DEMO_CATALOG_TRACKS": "0",
            "BACKLINE_RATE_LIMIT_AGENT_SEARCH": "3 per 60 seconds",
            "BACKLINE_RATE_LIMIT_AGENT_LICENSE": "2 per 60 seconds",
        },
    )
    try:
        codes = [
            httpx.get(f"{server.base_url}{AGENT}/catalog/search").status_code for _ in range(4)
        ]
        assert codes == [200, 200, 200, 429]
        r = httpx.get(f"{server.base_url}{AGENT}/catalog/search")
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) > 0
        assert "error" in r.json()
        codes = [
            httpx.post(f"{server.base_url}{AGENT}/license/1/social_media").status_code
            for _ in range(3)
        ]
        assert codes == [404, 404, 429]
    finally:
        server.stop()
