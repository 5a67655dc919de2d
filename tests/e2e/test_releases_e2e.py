"""Releases against a real ``backline serve`` with the official ``mcp`` SDK and httpx.

Buy credits through the sandbox hosted checkout, upload audio (one human master, one
carrying Suno's mark) and cover art, detect AI, draft in three deltas, submit with a
token offset, check the exact debit (1 + 2 + 1 credits, two ledger refs), watch the
delivery job go ``queued → … → live`` in the in-server worker against the store
simulator, and read status and metadata back.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ServerProcess, start_server
from tests.e2e.test_uploads_e2e import bearer
from tests.releases_helpers import release_date
from tests.uploads_helpers import image_bytes, wav_bytes, with_riff_info


@pytest.fixture
def srv(tmp_path: Path) -> Any:
    server = start_server(tmp_path / "data", {"BACKLINE_STORE_LATENCY": "1.5"})
    yield server
    server.stop()


async def session(base: str, token: str, steps: Any) -> Any:
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(f"{base}/api/mcp", http_client=http)) as client,
    ):

        async def call(name: str, args: dict[str, Any]) -> dict[str, Any]:
            result = await client.call_tool(name, args)
            assert result.is_error is False, result
            out: dict[str, Any] = result.structured_content or {}
            return out

        return await steps(call)


def test_upload_detect_draft_submit_bill_deliver_live(srv: ServerProcess, tmp_path: Path) -> None:
    uid, token = bearer(srv, tmp_path / "data", "release-e2e@example.com")
    auth = {"Authorization": f"Bearer {token}"}
    human = wav_bytes(2.0, seed=11)
    suno = with_riff_info(wav_bytes(2.0, seed=12), {"ISFT": "Suno v4.5"})
    cover = image_bytes(3000, 3000)
    with httpx.Client(base_url=srv.base_url, timeout=60) as http:
        up = http.post(
            "/api/mcp/upload",
            files={"file": ("human.wav", human, "audio/wav")},
            data={"type": "audio"},
            headers=auth,
        )
        assert up.status_code in (200, 201), up.text
        human_url = up.json()["fileUrl"]

    async def buy_and_upload(call: Any) -> dict[str, Any]:
        checkout = await call(
            "create_credit_checkout_session", {"packageId": "credits_10", "uiMode": "hosted"}
        )
        async with httpx2.AsyncClient(timeout=30) as buyer:
            page = await buyer.get(checkout["url"])
            assert page.status_code == 200
            paid = await buyer.post(
                checkout["url"], data={"card": "visa", "_csrf_token": buyer.cookies["csrftoken"]}
            )
            assert paid.status_code == 303
        ai = await call(
            "upload_file",
            {
                "fileName": "suno.wav",
                "type": "audio",
                "fileBase64": base64.b64encode(suno).decode(),
            },
        )
        art = await call(
            "upload_file",
            {
                "fileName": "cover.png",
                "type": "coverArt",
                "fileBase64": base64.b64encode(cover).decode(),
            },
        )
        return {
            "ai": ai["fileUrl"],
            "cover": art["fileUrl"],
            "balance": (await call("get_credits", {}))["balance"],
        }

    files = anyio.run(session, srv.base_url, token, buy_and_upload)
    assert files["balance"] == 10
    assert f"/{uid}/" in files["ai"]
    assert f"/{uid}/" in human_url

    async def release_flow(call: Any) -> dict[str, Any]:
        det_ai = await call("detect_audio_ai", {"fileUrl": files["ai"], "trackIndex": 1})
        det_h = await call("detect_audio_ai", {"fileUrl": human_url, "trackIndex": 0})
        assert (det_ai["containsAi"], det_h["containsAi"]) == (True, False)
        conv = "e2e-conversation"
        d1 = await call(
            "save_draft",
            {"conversationId": conv, "mode": "delta", "release": {"title": "Night Drive"}},
        )
        await call(
            "save_draft",
            {
                "conversationId": conv,
                "mode": "delta",
                "release": {
                    "primary_artist_name": "Ada",
                    "genre": "Electronic",
                    "release_date": release_date(14),
                    "cover_art_file_url": files["cover"],
                },
                "tracks": [
                    {
                        "title": "Human Made",
                        "audio_file_url": human_url,
                        "explicit_flag": False,
                        "writers": [{"name": "Ada Lovelace"}],
                    }
                ],
            },
        )
        d3 = await call(
            "save_draft",
            {
                "releaseId": d1["releaseId"],
                "mode": "delta",
                "trackPatches": [
                    {
                        "index": 1,
                        "patch": {
                            "title": "Machine Made",
                            "audio_file_url": files["ai"],
                            "explicit_flag": True,
                            "writers": [{"name": "Ada Lovelace"}],
                        },
                    }
                ],
                "status": "ready",
            },
        )
        assert d3["draftVersion"] == 3
        submitted = await call(
            "submit_release",
            {"releaseId": d1["releaseId"], "conversationId": conv, "tokenOffset": True},
        )
        credits = await call("get_credits", {"transactionLimit": 10})
        deadline = time.monotonic() + 45
        seen: list[str] = []
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = await call("get_job_status", {"jobId": submitted["jobId"]})
            if not seen or seen[-1] != job["status"]:
                seen.append(job["status"])
            if job["status"] in ("live", "failed"):
                break
            await anyio.sleep(0.2)
        status = await call("get_release_status", {"releaseId": submitted["releaseId"]})
        metadata = await call("get_release_metadata", {"releaseId": submitted["releaseId"]})
        listed = await call("list_releases", {"limit": 100})
        again = await call("submit_release", {"conversationId": conv, "tokenOffset": True})
        after = await call("get_credits", {})
        return {
            "submitted": submitted,
            "credits": credits,
            "seen": seen,
            "job": job,
            "status": status,
            "metadata": metadata,
            "listed": listed,
            "again": again,
            "after": after,
        }

    out = anyio.run(session, srv.base_url, token, release_flow)
    sub = out["submitted"]
    rid = sub["releaseId"]
    assert sub["creditsCharged"] == 4  # 1 (human) + 2 (AI-detected) + 1 (token offset)
    assert sub["breakdown"]["aiTracks"] == 1
    assert sub["breakdown"]["humanTracks"] == 1
    assert sub["newBalance"] == 6
    txs = {t["ref"]: t for t in out["credits"]["transactions"]}
    assert txs[f"release:{rid}"]["amount"] == 3
    assert txs[f"release:{rid}"]["type"] == "debit"
    assert txs[f"token_offset:{rid}"]["amount"] == 1
    assert out["credits"]["balance"] == 6

    assert out["job"]["status"] == "live", (out["seen"], out["job"], srv.logs()[-3000:])
    assert out["seen"][-1] == "live"
    assert len(out["seen"]) >= 2  # it was seen on its way (queued/delivering/delivered)
    assert {s["status"] for s in out["status"]["stores"]} == {"live"}
    assert out["status"]["status"] == "live"
    meta = out["metadata"]
    assert meta["source"] == "submitted"
    assert meta["release"]["title"] == "Night Drive"
    assert meta["release"]["upc"] == sub["upc"]
    assert [t["title"] for t in meta["tracks"]] == ["Human Made", "Machine Made"]
    assert [t["isrc"] for t in meta["tracks"]] == sub["isrcs"]
    assert [t["ai_detected"] for t in meta["tracks"]] == [False, True]
    assert out["listed"]["releases"][0]["releaseId"] == rid
    assert out["listed"]["releases"][0]["tokenOffset"] is True
    assert out["again"]["replayed"] is True
    assert out["again"]["jobId"] == sub["jobId"]
    assert out["after"]["balance"] == 6  # the resubmission charged nothing
