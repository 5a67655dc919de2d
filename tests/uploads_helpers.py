"""Shared helpers for upload tests: generated media files and an in-process API harness."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from litestar.testing import TestClient
from PIL import Image

from backline.api.app import create_app
from backline.infra.asgi import api_config
from backline.infra.container import Container
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"


def wav_bytes(
    seconds: float = 1.0,
    rate: int = 44100,
    channels: int = 2,
    subtype: str = "PCM_16",
    seed: int = 0,
) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    data = np.stack([tone + 0.01 * rng.standard_normal(len(t)) for _ in range(channels)], axis=1)
    out = io.BytesIO()
    sf.write(out, data.astype(np.float32), rate, format="WAV", subtype=subtype)
    return out.getvalue()


def audio_bytes(fmt: str, seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> bytes:
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "AIFF": "PCM_16", "MP3": "MPEG_LAYER_III"}[fmt]
    t = np.arange(int(seconds * rate)) / rate
    data = np.stack([0.3 * np.sin(2 * np.pi * 330.0 * t)] * channels, axis=1).astype(np.float32)
    out = io.BytesIO()
    sf.write(out, data, rate, format=fmt, subtype=subtype)
    return out.getvalue()


def with_riff_info(wav: bytes, fields: dict[str, str]) -> bytes:
    """Append a LIST/INFO chunk (e.g. ISFT=Suno) to a WAV and fix the RIFF size."""
    body = b"INFO"
    for key, value in fields.items():
        raw = value.encode() + b"\0"
        if len(raw) % 2:
            raw += b"\0"
        body += key.encode()[:4] + struct.pack("<I", len(raw)) + raw
    chunk = b"LIST" + struct.pack("<I", len(body)) + body
    out = bytearray(wav + chunk)
    out[4:8] = struct.pack("<I", len(out) - 8)
    return bytes(out)


def image_bytes(
    w: int, h: int, fmt: str = "PNG", mode: str = "RGB", exif_orientation: int = 0
) -> bytes:
    im = Image.new(mode, (w, h))
    px = np.zeros((h, w, 3), dtype=np.uint8)
    px[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    px[: h // 2, :, 1] = 200  # top half green: shows orientation
    im = Image.fromarray(px, "RGB").convert(mode) if mode != "RGB" else Image.fromarray(px, "RGB")
    out = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    im.save(out, fmt, **kwargs)
    return out.getvalue()


class Api:
    """A signed-up account with a bearer token against the in-process ASGI app."""

    def __init__(self, client: TestClient[Any], container: Container) -> None:
        self.client = client
        self.container = container
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    def user(self, email: str = "ada@example.com") -> tuple[str, dict[str, str]]:
        if email not in self.tokens:
            reg = self.container.accounts.register(email, PASSWORD, "Ada")
            issued = self.container.oauth.issue_direct(
                reg.account_id,
                client_id="backline-cli",
                scope="once:mcp",
                audience=f"{self.container.settings.public_url}/api/mcp",
                via="cli",
            )
            self.tokens[email] = issued.access_token
            self.ids[email] = str(reg.account_id)
        return self.ids[email], {"Authorization": f"Bearer {self.tokens[email]}"}

    def call(self, name: str, arguments: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        r = self.client.post(
            "/api/mcp",
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            },
            headers={**headers, "MCP-Protocol-Version": "2025-06-18"},
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def tool(self, name: str, arguments: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        body = self.call(name, arguments, headers)
        assert "result" in body, json.dumps(body)
        assert body["result"]["isError"] is False, json.dumps(body)
        result: dict[str, Any] = body["result"]["structuredContent"]
        return result

    def prepare(
        self,
        headers: dict[str, str],
        size: int,
        kind: str = "audio",
        name: str = "Track.wav",
        **kw: Any,
    ) -> dict[str, Any]:
        return self.tool(
            "prepare_local_file_upload",
            {"fileName": name, "fileSize": size, "type": kind, **kw},
            headers,
        )

    def send_raw(
        self,
        prep: dict[str, Any],
        index: int,
        data: bytes,
        kind: str = "audio",
        token: str | None = None,
    ) -> Any:
        return self.client.post(
            "/api/mcp/upload/chunk",
            content=data,
            headers={
                "x-mcp-upload-token": token or prep["upload_token"],
                "x-session-id": prep["session_id"],
                "x-chunk-index": str(index),
                "x-upload-type": kind,
                "content-type": "application/octet-stream",
            },
        )

    def complete(
        self, prep: dict[str, Any], name: str = "Track.wav", kind: str = "audio", **kw: Any
    ) -> Any:
        return self.client.post(
            "/api/mcp/upload/complete",
            json={"sessionId": prep["session_id"], "fileName": name, "type": kind, **kw},
            headers={"x-mcp-upload-token": prep["upload_token"]},
        )

    def chunked(
        self, headers: dict[str, str], data: bytes, chunk: int, **kw: Any
    ) -> dict[str, Any]:
        prep = self.prepare(
            headers,
            len(data),
            chunkBytes=chunk,
            **{k: v for k, v in kw.items() if k in ("kind", "name")},
        )
        for i in range(prep["total_chunks"]):
            r = self.send_raw(
                prep, i, data[i * chunk : (i + 1) * chunk], kind=kw.get("kind", "audio")
            )
            assert r.status_code == 200, r.text
        r = self.complete(prep, name=kw.get("name", "Track.wav"), kind=kw.get("kind", "audio"))
        assert r.status_code == 200, r.text
        result: dict[str, Any] = r.json()
        return result


def build_api(
    tmp_path: Path, database_url: str | None = None, **env: str
) -> tuple[TestClient[Any], Container]:
    settings = make_settings(
        database_url or f"sqlite:///{tmp_path / 'backline.db'}",
        tmp_path,
        BACKLINE_PUBLIC_URL="http://127.0.0.1:8000",
        BACKLINE_COVER_ART_SIZE=env.pop("BACKLINE_COVER_ART_SIZE", "600"),
        **env,
    )
    container = Container.build(settings)
    client = TestClient(create_app(container, api_config(settings), start_background=False))
    return client, container
