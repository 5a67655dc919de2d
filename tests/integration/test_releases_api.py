"""Releases through the real ASGI app: REST routes and MCP tools, errors in each shape."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.releases_helpers import FAST, Artist
from tests.uploads_helpers import Api, build_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    client, container = build_api(
        tmp_path,
        BACKLINE_COVER_ART_SIZE="3000",
        BACKLINE_RATE_LIMIT_SUBMIT="4 per 60 seconds",
        **FAST,
    )
    with client:
        yield Api(client, container)


def artist(api: Api, email: str, credits: int = 10) -> tuple[Artist, dict[str, str]]:
    uid, headers = api.user(email)
    return Artist(api.container, email, credits, account_id=UUID(uid)), headers


def rpc_error(api: Api, name: str, args: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    body = api.call(name, args, headers)
    assert "error" in body, body
    error: dict[str, Any] = body["error"]
    return error


def test_drafts_submit_and_queries_over_rest_and_mcp(api: Api) -> None:
    a, h = artist(api, "ada@example.com")
    detected = api.tool("detect_audio_ai", {"fileUrl": a.ai}, h)
    assert detected["containsAi"] is True
    d1 = api.tool("save_draft", {"conversationId": "conv", "release": {"title": "Night"}}, h)
    rid = d1["releaseId"]
    r = api.client.post(
        "/api/mcp/draft",
        json={"conversationId": "conv", "mode": "delta", "tracks": [a.track(a.human, "One")]},
        headers=h,
    )
    assert r.status_code == 200, r.text
    assert r.json()["releaseId"] == rid
    d3 = api.tool(
        "save_draft",
        {"releaseId": rid, "trackPatches": [{"index": 1, "patch": a.track(a.ai, "Two")}]},
        h,
    )
    assert d3["draftVersion"] == 3
    assert [t["title"] for t in d3["tracks"]] == ["One", "Two"]
    meta = api.tool("get_release_metadata", {"releaseId": rid}, h)
    assert (meta["source"], meta["draftVersion"]) == ("draft", 3)
    # detect_audio_ai's result is written into the draft track that uses the file.
    assert meta["tracks"][1]["aiDetection"]["containsAi"] is True
    assert "aiDetection" not in meta["tracks"][0]  # never detected yet
    history = api.client.get(f"/api/mcp/releases/{rid}/drafts", headers=h).json()
    assert len(history["snapshots"]) == 3

    r = api.client.post(
        "/api/mcp/submit",
        json={"conversationId": "conv", "release": a.release(), "tokenOffset": True},
        headers={**h, "Idempotency-Key": "k-1"},
    )
    assert r.status_code == 200, r.text
    sub = r.json()
    assert sub["releaseId"] == rid
    assert sub["creditsCharged"] == 4  # 1 human + 2 AI + 1 token offset
    assert sub["newBalance"] == 6
    assert sub["breakdown"] == {
        "tracks": 2,
        "humanTracks": 1,
        "aiTracks": 1,
        "trackCredits": 3,
        "tokenOffsetCredits": 1,
    }
    again = api.tool("submit_release", {"releaseId": rid, "tokenOffset": True}, h)
    assert again["replayed"] is True
    assert (again["jobId"], again["creditsCharged"], again["newBalance"]) == (sub["jobId"], 4, 6)
    assert api.container.credits.balance(a.id) == 6

    listed = api.client.get("/api/mcp/releases?limit=100", headers=h).json()
    assert [x["releaseId"] for x in listed["releases"]] == [rid]
    assert listed["releases"][0]["mcpProvenance"] == "MCP"
    meta = api.client.get(f"/api/mcp/releases/{rid}/metadata", headers=h).json()
    assert meta["source"] == "submitted"
    assert meta["release"]["upc"] == sub["upc"]
    assert [t["isrc"] for t in meta["tracks"]] == sub["isrcs"]

    deadline = time.monotonic() + 20
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        api.container.runner.catch_up()
        api.container.delivery.worker.run_once()
        status = api.client.get(f"/api/mcp/releases/{rid}/status", headers=h).json()
        if status["status"] == "live":
            break
        time.sleep(0.05)
    assert status["status"] == "live"
    assert {s["store"]: s["status"] for s in status["stores"]} == {
        "spotify": "live",
        "apple_music": "live",
        "amazon_music": "live",
    }
    job = api.tool("get_job_status", {"jobId": sub["jobId"]}, h)
    assert (job["kind"], job["status"], job["error"]) == ("release_delivery", "live", None)
    rest_job = api.client.get(f"/api/mcp/release-jobs/{sub['jobId']}", headers=h).json()
    assert rest_job["status"] == "live"

    # Another account sees none of it.
    _, other = artist(api, "bob@example.com")
    for path in (
        f"/api/mcp/releases/{rid}/metadata",
        f"/api/mcp/releases/{rid}/status",
        f"/api/mcp/release-jobs/{sub['jobId']}",
    ):
        r = api.client.get(path, headers=other)
        assert r.status_code == 404, (path, r.text)
    err = rpc_error(api, "get_release_status", {"releaseId": rid}, other)
    assert err["data"]["code"] == "release_not_found"
    assert api.tool("list_releases", {"limit": 10}, other)["releases"] == []

    # Takedown and metadata update over REST.
    r = api.client.post(
        f"/api/mcp/releases/{rid}/update",
        json={"release": {"title": "Night (Remaster)"}},
        headers=h,
    )
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "release_update"
    down = api.tool("takedown_release", {"releaseId": rid, "reason": "artist request"}, h)
    assert down["kind"] == "release_takedown"


def test_validation_insufficient_credits_and_rate_limit_in_each_shape(api: Api) -> None:
    a, h = artist(api, "ada@example.com", credits=1)
    bad = {"release": a.release(genre="Polka-Step"), "tracks": [a.track(a.human)]}
    r = api.client.post("/api/mcp/submit", json=bad, headers=h)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_genre"
    assert r.json()["error"]["field"] == "release.genre"
    err = rpc_error(api, "submit_release", bad, h)
    assert err["code"] == -32602
    assert (err["data"]["code"], err["data"]["field"]) == ("invalid_genre", "release.genre")

    poor = {"release": a.release(), "tracks": [a.track(a.ai)]}
    err = rpc_error(api, "submit_release", poor, h)
    assert err["data"]["code"] == "insufficient_credits"
    assert (err["data"]["cost"], err["data"]["balance"]) == (2, 1)
    assert "checkout" in err["data"]["howToBuy"]

    # 4 submissions a minute: the 5th is refused with retryAfterSeconds on both surfaces.
    r = api.client.post("/api/mcp/submit", json=poor, headers=h)
    assert r.status_code == 409
    r = api.client.post("/api/mcp/submit", json=poor, headers=h)
    assert r.status_code == 429, r.text
    assert r.json()["retryAfterSeconds"] > 0
    assert int(r.headers["retry-after"]) > 0
    err = rpc_error(api, "submit_release", poor, h)
    assert err["code"] == 429
    assert err["data"]["retryAfterSeconds"] > 0


def test_routes_require_a_bearer_and_tools_are_listed(api: Api) -> None:
    assert api.client.post("/api/mcp/submit", json={}).status_code == 401
    assert api.client.get("/api/mcp/releases").status_code == 401
    _, h = api.user()
    assert api.client.get("/api/mcp/releases?limit=0", headers=h).status_code == 422
    assert api.client.get(f"/api/mcp/releases/{UUID(int=1)}/status", headers=h).status_code == 404
    assert api.client.get("/api/mcp/release-jobs/not-a-uuid", headers=h).status_code == 404
    r = api.client.post(
        "/api/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**h, "MCP-Protocol-Version": "2025-06-18"},
    )
    tools = {t["name"]: t for t in r.json()["result"]["tools"]}
    for name in (
        "save_draft",
        "submit_release",
        "list_releases",
        "get_release_metadata",
        "get_release_status",
        "get_job_status",
    ):
        assert name in tools
        assert "outputSchema" in tools[name]
    assert "releaseId" in tools["get_release_status"]["inputSchema"]["properties"]
    assert "jobId" in tools["get_job_status"]["inputSchema"]["properties"]
