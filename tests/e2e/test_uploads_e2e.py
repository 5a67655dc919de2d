"""Uploads against a real ``backline serve``: the official ``mcp`` SDK plus httpx.

A generated WAV goes up in chunks (out of order, in parallel), is completed, comes back
byte-identical, is checked for AI and gets generated cover art. A second test kills the
server (SIGKILL) in the middle of an upload — one chunk half sent — restarts it on the
same data, and resumes: nothing half-written is ever served.
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from PIL import Image

from tests.conftest import ROOT, ServerProcess, start_server
from tests.uploads_helpers import wav_bytes, with_riff_info

PASSWORD = "correct horse battery staple"
CHUNK = 256 * 1024


def cli(srv: ServerProcess, data_dir: Path, *args: str, stdin: str = "") -> str:
    env = {
        **os.environ,
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_PUBLIC_URL": srv.base_url,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
    }
    out = subprocess.run(
        [sys.executable, "-m", "backline.infra.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


def bearer(srv: ServerProcess, data_dir: Path, email: str) -> tuple[str, str]:
    created = cli(srv, data_dir, "accounts", "create", email, stdin=PASSWORD + "\n")
    account_id = created.split()[1]
    token = cli(srv, data_dir, "tokens", "issue", email, "--scope", "once:mcp").splitlines()[0]
    return account_id, token


async def call_tools(base: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    results = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(f"{base}/api/mcp", http_client=http)) as client,
    ):
        for name, args in calls:
            result = await client.call_tool(name, args)
            assert result.is_error is False, result
            results.append(result.structured_content)
    return results


def send_chunk(base: str, prep: dict[str, Any], index: int, data: bytes) -> httpx.Response:
    return httpx.post(
        prep["chunk_endpoint"],
        content=data,
        headers={
            "x-mcp-upload-token": prep["upload_token"],
            "x-session-id": prep["session_id"],
            "x-chunk-index": str(index),
            "x-upload-type": "audio",
            "content-type": "application/octet-stream",
        },
        timeout=60,
    )


@pytest.fixture
def srv(tmp_path: Path) -> Any:
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


def test_sdk_chunked_upload_download_detect_and_cover_art(
    srv: ServerProcess, tmp_path: Path
) -> None:
    uid, token = bearer(srv, tmp_path / "data", "e2e@example.com")
    wav = with_riff_info(wav_bytes(10.0, seed=3), {"ICMT": "Created with Udio"})
    (prep,) = anyio.run(
        call_tools,
        srv.base_url,
        token,
        [
            (
                "prepare_local_file_upload",
                {
                    "fileName": "Master.wav",
                    "fileSize": len(wav),
                    "type": "audio",
                    "chunkBytes": CHUNK,
                },
            )
        ],
    )
    n = prep["total_chunks"]
    assert n == -(-len(wav) // CHUNK)
    assert n >= 6
    order = list(range(n))[::-1]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        replies = list(
            pool.map(
                lambda i: send_chunk(srv.base_url, prep, i, wav[i * CHUNK : (i + 1) * CHUNK]), order
            )
        )
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    done = httpx.post(
        prep["complete_endpoint"],
        json={
            "sessionId": prep["session_id"],
            "fileName": "Master.wav",
            "fileType": "audio/wav",
            "type": "audio",
        },
        headers={"x-mcp-upload-token": prep["upload_token"]},
        timeout=60,
    )
    assert done.status_code == 200, done.text
    file_url = done.json()["fileUrl"]
    assert file_url == f"/api/files/audio/{uid}/Master.wav"
    auth = {"Authorization": f"Bearer {token}"}
    got = httpx.get(srv.base_url + file_url, headers=auth, timeout=60)
    assert got.status_code == 200
    assert got.content == wav
    assert got.headers["content-type"] == "audio/wav"

    first, second, cover = anyio.run(
        call_tools,
        srv.base_url,
        token,
        [
            ("detect_audio_ai", {"fileUrl": file_url, "fileName": "Master.wav"}),
            ("detect_audio_ai", {"fileUrl": file_url}),
            ("generate_cover_art", {"prompt": "Lo-fi vinyl in a sunset cafe, warm pastels"}),
        ],
    )
    assert first["status"] == "ok"
    assert first["containsAi"] is True
    assert first["predictedModel"] == "Udio"
    assert first["provider"] == "local-provenance"
    assert first["cached"] is False
    assert second["cached"] is True
    assert cover["edited"] is False
    assert cover["bucket"] == "cover-art"
    art = httpx.get(srv.base_url + cover["fileUrl"], headers=auth, timeout=60)
    assert art.status_code == 200
    with Image.open(io.BytesIO(art.content)) as im:
        assert im.size == (3000, 3000)
    # Another account cannot see either file.
    _, other = bearer(srv, tmp_path / "data", "other@example.com")
    assert (
        httpx.get(srv.base_url + file_url, headers={"Authorization": f"Bearer {other}"}).status_code
        == 404
    )


def _half_send(base: str, prep: dict[str, Any], index: int, data: bytes) -> socket.socket:
    """Open a raw connection and send only half of a chunk's body (then stall)."""
    parts = urlsplit(base)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10)
    head = (
        f"POST /api/mcp/upload/chunk HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        f"x-mcp-upload-token: {prep['upload_token']}\r\nx-session-id: {prep['session_id']}\r\n"
        f"x-chunk-index: {index}\r\nx-upload-type: audio\r\n"
        f"content-type: application/octet-stream\r\ncontent-length: {len(data)}\r\n\r\n"
    )
    sock.sendall(head.encode() + data[: len(data) // 2])
    return sock


def test_server_killed_mid_upload_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    srv = start_server(data_dir)
    try:
        uid, token = bearer(srv, data_dir, "kill@example.com")
        wav = wav_bytes(6.0, seed=9)
        (prep,) = anyio.run(
            call_tools,
            srv.base_url,
            token,
            [
                (
                    "prepare_local_file_upload",
                    {
                        "fileName": "Take.wav",
                        "fileSize": len(wav),
                        "type": "audio",
                        "chunkBytes": CHUNK,
                    },
                )
            ],
        )
        n = prep["total_chunks"]
        half = n // 2
        for i in range(half):
            assert (
                send_chunk(srv.base_url, prep, i, wav[i * CHUNK : (i + 1) * CHUNK]).status_code
                == 200
            )
        sock = _half_send(srv.base_url, prep, half, wav[half * CHUNK : (half + 1) * CHUNK])
        srv.proc.kill()  # SIGKILL: no graceful shutdown
        srv.proc.wait()
        sock.close()
    finally:
        srv.stop()

    srv = start_server(data_dir)  # a new port: endpoints and bearer audience change
    try:
        # The upload token and session survive; the half-sent chunk was never recorded.
        prep = {
            **prep,
            "chunk_endpoint": f"{srv.base_url}/api/mcp/upload/chunk",
            "complete_endpoint": f"{srv.base_url}/api/mcp/upload/complete",
        }
        status = httpx.get(
            f"{srv.base_url}/api/mcp/upload/status",
            params={"sessionId": prep["session_id"]},
            headers={"x-mcp-upload-token": prep["upload_token"]},
        ).json()
        assert status["receivedChunks"] == list(range(half))
        assert status["missingChunks"] == list(range(half, n))
        # Nothing is published yet: no half file can be fetched.
        token = cli(srv, data_dir, "tokens", "issue", "kill@example.com").splitlines()[0]
        auth = {"Authorization": f"Bearer {token}"}
        assert (
            httpx.get(f"{srv.base_url}/api/files/audio/{uid}/Take.wav", headers=auth).status_code
            == 404
        )
        # Resume: re-send everything (the stored chunks are no-ops), then complete.
        for i in range(n):
            r = send_chunk(srv.base_url, prep, i, wav[i * CHUNK : (i + 1) * CHUNK])
            assert r.status_code == 200, r.text
            assert r.json()["duplicate"] is (i < half)
        done = httpx.post(
            prep["complete_endpoint"],
            json={"sessionId": prep["session_id"], "fileName": "Take.wav", "type": "audio"},
            headers={"x-mcp-upload-token": prep["upload_token"]},
            timeout=60,
        )
        assert done.status_code == 200, done.text
        got = httpx.get(srv.base_url + done.json()["fileUrl"], headers=auth, timeout=60)
        assert got.content == wav
    finally:
        srv.stop()
