"""Uploads through the real ASGI app: chunked sessions, tokens, serving, tools, faults."""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from backline.application.uploads import UploadService
from backline.domain.uploads import StoredFile, UploadSession
from tests.uploads_helpers import Api, audio_bytes, build_api, image_bytes, wav_bytes

CHUNK = 64 * 1024


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    client, container = build_api(tmp_path, BACKLINE_RATE_LIMIT_COVER_ART="3 per 120 seconds")
    with client:
        yield Api(client, container)


def test_chunked_upload_out_of_order_resend_and_download(api: Api) -> None:
    uid, h = api.user()
    wav = wav_bytes(2.0)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    assert prep["upload_header_name"] == "x-mcp-upload-token"
    assert prep["chunk_endpoint"].endswith("/api/mcp/upload/chunk")
    assert prep["complete_endpoint"].endswith("/api/mcp/upload/complete")
    assert prep["recommended_chunk_bytes"] == CHUNK == prep["max_chunk_bytes"]
    n = prep["total_chunks"]
    assert n == -(-len(wav) // CHUNK)
    assert n > 3
    parts = [wav[i * CHUNK : (i + 1) * CHUNK] for i in range(n)]
    for i in reversed(range(1, n)):
        r = api.send_raw(prep, i, parts[i])
        assert r.status_code == 200, r.text
        assert r.json()["sha256"] == hashlib.sha256(parts[i]).hexdigest()
    # Completing with a chunk missing names it.
    r = api.complete(prep)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "missing_chunks"
    assert r.json()["error"]["missingChunks"] == [0]
    # Same bytes again: a no-op. Different bytes for a stored index: 409.
    r = api.send_raw(prep, 1, parts[1])
    assert r.status_code == 200
    assert r.json()["duplicate"] is True
    r = api.send_raw(prep, 1, bytes(reversed(parts[1])))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "chunk_conflict"
    # The first chunk as multipart, then complete.
    r = api.client.post(
        "/api/mcp/upload/chunk",
        files={"chunk": ("blob", parts[0], "application/octet-stream")},
        data={"chunkIndex": "0", "sessionId": prep["session_id"], "type": "audio"},
        headers={"x-mcp-upload-token": prep["upload_token"]},
    )
    assert r.status_code == 200, r.text
    assert (
        api.client.get(
            "/api/mcp/upload/status",
            params={"sessionId": prep["session_id"]},
            headers={"x-mcp-upload-token": prep["upload_token"]},
        ).json()["missingChunks"]
        == []
    )
    r = api.complete(prep, name="My Master.wav", fileType="audio/wav")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["userId"] == uid
    assert body["fileUrl"] == f"/api/files/audio/{uid}/My_Master.wav"
    assert body["fileName"] == "My_Master.wav"
    assert body["media"]["sampleRate"] == 44100
    assert body["media"]["channels"] == 2
    assert body["distributionReady"] is True
    # Completing again answers the same file (safe retry); chunks are gone.
    again = api.complete(prep, name="My Master.wav")
    assert again.status_code == 200
    assert again.json()["fileUrl"] == body["fileUrl"]
    r = api.send_raw(prep, 0, parts[0])
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "session_completed"

    got = api.client.get(body["fileUrl"], headers=h)
    assert got.status_code == 200
    assert got.content == wav
    assert got.headers["content-type"] == "audio/wav"
    assert got.headers["content-length"] == str(len(wav))
    etag = got.headers["etag"]
    meta = api.client.head(body["fileUrl"], headers=h)
    assert meta.status_code == 200
    assert meta.content == b""
    assert meta.headers["content-length"] == str(len(wav))
    assert meta.headers["etag"] == etag
    assert api.client.head(body["fileUrl"]).status_code == 401
    assert etag == f'"{hashlib.sha256(wav).hexdigest()}"'
    assert api.client.get(body["fileUrl"], headers={**h, "If-None-Match": etag}).status_code == 304
    part = api.client.get(body["fileUrl"], headers={**h, "Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.content == wav[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(wav)}"
    tail = api.client.get(body["fileUrl"], headers={**h, "Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.content == wav[-10:]
    bad = api.client.get(body["fileUrl"], headers={**h, "Range": f"bytes={len(wav)}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{len(wav)}"


def test_json_base64_chunks(api: Api) -> None:
    _, h = api.user()
    wav = wav_bytes(0.5)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    for i in range(prep["total_chunks"]):
        r = api.client.post(
            "/api/mcp/upload/chunk",
            json={
                "chunkBase64": base64.b64encode(wav[i * CHUNK : (i + 1) * CHUNK]).decode(),
                "chunkIndex": i,
                "sessionId": prep["session_id"],
                "type": "audio",
            },
            headers={"x-mcp-upload-token": prep["upload_token"]},
        )
        assert r.status_code == 200, r.text
    r = api.complete(prep)
    assert r.status_code == 200
    assert api.client.get(r.json()["fileUrl"], headers=h).content == wav


def test_tokens_sessions_and_users_are_isolated(api: Api) -> None:
    _, ada = api.user("ada@example.com")
    _, bob = api.user("bob@example.com")
    wav = wav_bytes(0.5)
    a = api.prepare(ada, len(wav), chunkBytes=CHUNK)
    b = api.prepare(bob, len(wav), chunkBytes=CHUNK)
    chunk = wav[:CHUNK]

    def code(r: Any) -> tuple[int, str]:
        return r.status_code, r.json()["error"]["code"]

    # No credentials; a wrong, malformed or foreign token.
    r = api.client.post(
        "/api/mcp/upload/chunk",
        content=chunk,
        headers={"x-session-id": a["session_id"], "x-chunk-index": "0"},
    )
    assert r.status_code == 401
    forged = a["upload_token"][:-4] + "AAAA"
    assert code(api.send_raw(a, 0, chunk, token=forged)) == (401, "invalid_upload_token")
    assert code(api.send_raw(a, 0, chunk, token="garbage")) == (401, "invalid_upload_token")
    assert code(api.send_raw(a, 0, chunk, token=b["upload_token"])) == (401, "invalid_upload_token")
    # The upload token is useless as a bearer token anywhere else.
    r = api.client.post(
        "/api/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {a['upload_token']}"},
    )
    assert r.status_code == 401
    # Bob's bearer token on Ada's session: not found.
    r = api.client.post(
        "/api/mcp/upload/chunk",
        content=chunk,
        headers={
            **bob,
            "x-session-id": a["session_id"],
            "x-chunk-index": "0",
            "x-upload-type": "audio",
        },
    )
    assert r.status_code == 404
    # Ada's own bearer works on her session.
    r = api.client.post(
        "/api/mcp/upload/chunk",
        content=chunk,
        headers={
            **ada,
            "x-session-id": a["session_id"],
            "x-chunk-index": "0",
            "x-upload-type": "audio",
        },
    )
    assert r.status_code == 200, r.text
    # An expired token.
    api.container.uploads.policy = type(api.container.uploads.policy)(
        session_ttl=timedelta(seconds=-1)
    )
    expired = api.prepare(ada, len(wav), chunkBytes=CHUNK)
    assert code(api.send_raw(expired, 0, chunk)) == (401, "upload_token_expired")
    # The owner's bearer token does not revive an expired session either.
    r = api.client.post(
        "/api/mcp/upload/chunk",
        content=chunk,
        headers={**ada, "x-session-id": expired["session_id"], "x-chunk-index": "0"},
    )
    assert code(r) == (409, "upload_session_expired")


def test_bad_chunks(api: Api) -> None:
    _, h = api.user()
    wav = wav_bytes(0.5)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    n = prep["total_chunks"]
    for index in (-1, n, 10**9):
        r = api.send_raw(prep, index, wav[:CHUNK])
        assert r.status_code == 422
        assert r.json()["error"]["code"] == "invalid_chunk_index"
    r = api.send_raw(prep, 0, wav[:CHUNK], kind="coverArt")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "upload_type_mismatch"
    r = api.send_raw(prep, 0, wav[: CHUNK + 1])
    assert r.status_code == 413
    r = api.send_raw(prep, 0, wav[:100])
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_chunk_size"
    r = api.send_raw(prep, 0, b"x", kind="video")
    assert r.status_code == 422
    # Sizes over the limit are refused when the session is prepared.
    body = api.call(
        "prepare_local_file_upload",
        {"fileName": "a.wav", "fileSize": 3 * 1024**3, "type": "audio"},
        h,
    )
    assert body["error"]["data"]["code"] == "payload_too_large"
    body = api.call(
        "prepare_local_file_upload", {"fileName": "a.wav", "fileSize": 0, "type": "audio"}, h
    )
    assert body["error"]["data"]["code"] == "invalid_file_size"
    body = api.call(
        "prepare_local_file_upload",
        {"fileName": "a.wav", "fileSize": 1024**3, "type": "audio", "chunkBytes": 65536},
        h,
    )
    assert body["error"]["data"]["code"] == "invalid_chunk_size"
    assert body["error"]["data"]["minChunkBytes"] == 1024**2


def test_corrupt_content_rejects_the_session(api: Api) -> None:
    _, h = api.user()
    wav = wav_bytes(0.5)
    broken = wav[:44] + bytes(len(wav) - 44 - 1000)  # header then zeros, too short
    prep = api.prepare(h, len(broken), chunkBytes=CHUNK)
    for i in range(prep["total_chunks"]):
        assert api.send_raw(prep, i, broken[i * CHUNK : (i + 1) * CHUNK]).status_code == 200
    r = api.complete(prep)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "truncated_audio"
    assert "declares" in r.json()["error"]["message"]
    r = api.complete(prep)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "session_rejected"


def test_concurrent_completion_exactly_one_wins(api: Api) -> None:
    _, h = api.user()
    wav = wav_bytes(1.0)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    for i in range(prep["total_chunks"]):
        assert api.send_raw(prep, i, wav[i * CHUNK : (i + 1) * CHUNK]).status_code == 200
    c = api.container
    # A second service over the same store and files plays another replica.
    other = UploadService(
        c.store, c.uploads.files, c.uploads.inspector, c.uploads.detector, c.uploads.generator
    )
    session = c.store.get(__import__("uuid").UUID(prep["session_id"]), UploadSession)
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(svc: UploadService) -> None:
        barrier.wait()
        try:
            results.append(svc.complete(session, file_name="race.wav").file_url)
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=run, args=(s,)) for s in (c.uploads, c.uploads, other, other)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(set(results)) == 1
    assert len(results) == 4
    events = list(c.store.events.get(session.id))
    assert sum(isinstance(e, UploadSession.Completed) for e in events) == 1
    # Exactly one file record for the session.
    published = c.store.recorder.select_notifications(
        start=1, limit=10_000, topics=["backline.StoredFile.Published"]
    )
    assert len(published) == 1
    assert api.client.get(results[0], headers=h).content == wav


def test_direct_multipart_upload_and_bad_files(api: Api) -> None:
    uid, h = api.user()
    _, bob = api.user("bob@example.com")

    def up(name: str, data: bytes, kind: str, ctype: str = "application/octet-stream") -> Any:
        return api.client.post(
            "/api/mcp/upload", files={"file": (name, data, ctype)}, data={"type": kind}, headers=h
        )

    # A WAV named .mp3 is stored as the WAV it is; a traversal name is defused.
    r = up("../../../etc/evil.mp3", wav_bytes(0.3), "audio")
    assert r.status_code == 200, r.text
    assert r.json()["fileName"] == "evil.wav"
    assert r.json()["fileUrl"] == f"/api/files/audio/{uid}/evil.wav"
    # Uploading the same name with other bytes does not overwrite.
    r2 = up("evil.wav", wav_bytes(0.3, seed=7), "audio")
    assert r2.status_code == 200
    assert r2.json()["fileName"] != "evil.wav"
    assert api.client.get(r.json()["fileUrl"], headers=h).content == wav_bytes(0.3)
    # The same bytes again are the same file.
    assert up("evil.wav", wav_bytes(0.3), "audio").json()["fileUrl"] == r.json()["fileUrl"]

    cover = up("cover.jpg", image_bytes(800, 600, "JPEG"), "coverArt", "image/jpeg")
    assert cover.status_code == 200
    assert cover.json()["media"]["width"] == 600
    assert cover.json()["media"]["cropped"] is True
    assert cover.json()["distributionReady"] is False
    assert "below" in " ".join(cover.json()["warnings"])
    for name, data, kind, want in [
        ("empty.wav", b"", "audio", "empty_file"),
        ("photo.wav", image_bytes(300, 300), "audio", "unsupported_media"),
        ("song.png", wav_bytes(0.2), "coverArt", "unsupported_media"),
        ("cut.flac", audio_bytes("FLAC", 1.0)[:5000], "audio", "corrupt_audio"),
    ]:
        r = up(name, data, kind)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["error"]["code"] in (want, "truncated_audio"), (name, r.text)
    r = api.client.post(
        "/api/mcp/upload", files={"file": ("a", b"x")}, data={"type": "video"}, headers=h
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "invalid_upload_type"
    # No bearer token: 401 challenge. A session cookie alone is not enough here.
    r = api.client.post(
        "/api/mcp/upload", files={"file": ("a.wav", wav_bytes(0.1))}, data={"type": "audio"}
    )
    assert r.status_code == 401
    assert "resource_metadata" in r.headers["www-authenticate"]
    # Files are the owner's: others get 404, anonymous 401.
    assert api.client.get(r2.json()["fileUrl"], headers=bob).status_code == 404
    assert api.client.get(r2.json()["fileUrl"]).status_code == 401
    assert api.client.get(f"/api/files/audio/{uid}/nope.wav", headers=h).status_code == 404
    assert (
        api.client.get(f"/api/files/audio/{uid}/..%2F..%2Fsecret_key", headers=h).status_code == 404
    )


def test_direct_upload_size_limit(tmp_path: Path) -> None:
    client, container = build_api(tmp_path, BACKLINE_UPLOAD_MAX_DIRECT_BYTES="100000")
    with client:
        api = Api(client, container)
        _, h = api.user()
        r = client.post(
            "/api/mcp/upload",
            files={"file": ("a.wav", wav_bytes(2.0))},
            data={"type": "audio"},
            headers=h,
        )
        assert r.status_code == 413
        assert list(container.uploads.files.staging.iterdir()) == []  # type: ignore[attr-defined]


def test_upload_file_tool_and_detection(api: Api) -> None:
    uid, h = api.user()
    _, bob = api.user("bob@example.com")
    from tests.uploads_helpers import with_riff_info

    suno = with_riff_info(wav_bytes(0.3), {"ISFT": "Suno v4.5"})
    out = api.tool(
        "upload_file",
        {"fileName": "ai.wav", "type": "audio", "fileBase64": base64.b64encode(suno).decode()},
        h,
    )
    assert out["success"] is True
    assert out["fileUrl"] == f"/api/files/audio/{uid}/ai.wav"
    first = api.tool("detect_audio_ai", {"fileUrl": out["fileUrl"]}, h)
    assert set(first) == {
        "status", "containsAi", "aiScore", "predictedModel", "predictedModelScore",
        "provider", "model", "message", "cached",
    }  # fmt: skip
    assert first["status"] == "ok"
    assert first["containsAi"] is True
    assert first["predictedModel"] == "Suno"
    assert first["cached"] is False
    second = api.tool(
        "detect_audio_ai", {"fileUrl": out["fileUrl"], "trackIndex": 2, "releaseId": "r1"}, h
    )
    assert second["cached"] is True
    assert second["aiScore"] == first["aiScore"]
    record = api.container.uploads.detection_for(out["fileUrl"])
    assert record is not None
    assert record.contains_ai is True
    assert record.predicted_model == "Suno"
    # The writeback to track 2 of release r1 is an event on the file.
    f = api.container.store.get(
        __import__("backline.domain.uploads", fromlist=["x"]).parse_file_url(out["fileUrl"]).id,
        StoredFile,
    )
    linked = [
        e for e in api.container.store.events.get(f.id) if isinstance(e, StoredFile.AiDetected)
    ]
    assert linked[-1].track_index == 2
    assert linked[-1].release_id == "r1"
    # Another user's file, a cover-art URL, a bad URL.
    assert (
        api.call("detect_audio_ai", {"fileUrl": out["fileUrl"]}, bob)["error"]["data"]["code"]
        == "file_not_found"
    )
    bad = api.call("detect_audio_ai", {"fileUrl": f"/api/files/cover-art/{uid}/x.png"}, h)
    assert bad["error"]["data"]["code"] == "not_audio"
    bad = api.call("detect_audio_ai", {"fileUrl": "https://evil.example/x.wav"}, h)
    assert bad["error"]["data"]["code"] == "invalid_file_url"
    bad = api.call("upload_file", {"fileName": "a.wav", "type": "audio", "fileBase64": "%%%"}, h)
    assert bad["error"]["data"]["code"] == "invalid_base64"


def test_detection_statuses(tmp_path: Path) -> None:
    client, container = build_api(tmp_path, BACKLINE_AI_DETECTOR_MAX_BYTES="1000")
    with client:
        api = Api(client, container)
        _, h = api.user()
        out = api.tool(
            "upload_file",
            {
                "fileName": "a.wav",
                "type": "audio",
                "fileBase64": base64.b64encode(wav_bytes(0.2)).decode(),
            },
            h,
        )
        d = api.tool("detect_audio_ai", {"fileUrl": out["fileUrl"]}, h)
        assert d["status"] == "too_large"
        assert d["containsAi"] is None
    client, container = build_api(tmp_path / "off", BACKLINE_AI_DETECTOR="off")
    with client:
        api = Api(client, container)
        _, h = api.user()
        out = api.tool(
            "upload_file",
            {
                "fileName": "a.wav",
                "type": "audio",
                "fileBase64": base64.b64encode(wav_bytes(0.2)).decode(),
            },
            h,
        )
        d = api.tool("detect_audio_ai", {"fileUrl": out["fileUrl"]}, h)
        assert d["status"] == "skipped"
        assert api.tool("detect_audio_ai", {"fileUrl": out["fileUrl"]}, h)["cached"] is False
        # The bytes vanish from storage: download_failed (not cached).
        f = container.uploads.get_file(
            __import__("backline.domain.uploads", fromlist=["x"]).parse_file_url(out["fileUrl"])
        )
        container.uploads.detector = container.uploads.detector.__class__()
        path = container.uploads.open_blob(f)
        assert path is not None
        path.unlink()
        d = api.tool("detect_audio_ai", {"fileUrl": out["fileUrl"]}, h)
        assert d["status"] == "download_failed"
        assert api.client.get(out["fileUrl"], headers=h).status_code >= 400


def test_generate_cover_art_edit_and_budget(api: Api) -> None:
    uid, h = api.user()
    _, bob = api.user("bob@example.com")
    first = api.tool(
        "generate_cover_art", {"prompt": "Lo-fi vinyl in a sunset cafe", "returnBase64": True}, h
    )
    assert first["bucket"] == "cover-art"
    assert first["edited"] is False
    assert first["fileUrl"] == f"/api/files/cover-art/{uid}/{first['fileName']}"
    assert first["key"] == f"{uid}/{first['fileName']}"
    assert first["fileName"].endswith(".png")
    assert first["aspectRatio"] == "1:1"
    assert first["rateLimit"]["remaining"] == 2
    stored = api.client.get(first["fileUrl"], headers=h)
    assert base64.b64decode(first["imageBase64"]) == stored.content
    edit = api.tool(
        "generate_cover_art", {"prompt": "Make it neon", "baseFileUrl": first["fileUrl"]}, h
    )
    assert edit["edited"] is True
    assert edit["rateLimit"]["remaining"] == 1
    # Bob may not edit Ada's cover; an audio URL is not a cover; bad prompts.
    refused = api.call("generate_cover_art", {"prompt": "x", "baseFileUrl": first["fileUrl"]}, bob)
    assert refused["error"]["data"]["code"] == "file_not_found"
    refused = api.call(
        "generate_cover_art", {"prompt": "x", "baseFileUrl": f"/api/files/audio/{uid}/a.wav"}, h
    )
    assert refused["error"]["data"]["code"] == "invalid_base_image"
    for prompt in ("", "   ", "x" * 1501):
        assert (
            api.call("generate_cover_art", {"prompt": prompt}, h)["error"]["data"]["code"]
            == "invalid_prompt"
        )
    b64 = "data:image/png;base64," + base64.b64encode(image_bytes(400, 400)).decode()
    third = api.tool("generate_cover_art", {"prompt": "Add stars", "baseImageBase64": b64}, h)
    assert third["edited"] is True
    assert third["rateLimit"]["remaining"] == 0
    limited = api.call("generate_cover_art", {"prompt": "One more"}, h)
    assert limited["error"]["code"] == 429
    assert limited["error"]["data"]["retryAfterSeconds"] > 0
    # The budget is per user.
    assert (
        api.tool("generate_cover_art", {"prompt": "Bob's cover"}, bob)["rateLimit"]["remaining"]
        == 2
    )


def test_signed_file_urls(api: Api) -> None:
    from backline.api.signing import sign_path

    _, h = api.user()
    r = api.client.post(
        "/api/mcp/upload",
        files={"file": ("c.png", image_bytes(300, 300), "image/png")},
        data={"type": "coverArt"},
        headers=h,
    )
    url = r.json()["fileUrl"]
    secret = api.container.settings.secret_key
    signed = sign_path(secret, url)
    got = api.client.get(signed)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/png"
    assert api.client.get(signed.replace("signature=", "signature=0")).status_code == 404
    assert api.client.get(sign_path(secret, url, ttl=-10)).status_code == 404
    other = url.rsplit("/", 1)[0] + "/other.png"
    assert api.client.get(sign_path(secret, other)).status_code == 404


def test_concurrent_chunks_and_completion_on_both_backends(
    database_url: str, tmp_path: Path
) -> None:
    client, container = build_api(tmp_path, database_url)
    with client:
        api = Api(client, container)
        _, h = api.user()
        wav = wav_bytes(1.0, seed=5)
        prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
        n = prep["total_chunks"]
        sid = __import__("uuid").UUID(prep["session_id"])
        c = container
        other = UploadService(
            c.store, c.uploads.files, c.uploads.inspector, c.uploads.detector, c.uploads.generator
        )

        def receive(i: int) -> None:
            svc = c.uploads if i % 2 else other
            staged = svc.staging_path("t")
            part = wav[i * CHUNK : (i + 1) * CHUNK]
            staged.write_bytes(part)
            svc.accept_chunk(sid, i, staged, len(part), hashlib.sha256(part).hexdigest())

        threads = [threading.Thread(target=receive, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        session = c.store.get(sid, UploadSession)
        assert session.missing_chunks() == []
        urls: list[str] = []
        workers = [
            threading.Thread(target=lambda s=svc: urls.append(s.complete(session).file_url))
            for svc in (c.uploads, other, other)
        ]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        assert len(urls) == 3
        assert len(set(urls)) == 1
        events = list(c.store.events.get(sid))
        assert sum(isinstance(e, UploadSession.Completed) for e in events) == 1
        assert api.client.get(urls[0], headers=h).content == wav
        # Finished sessions leave no chunk files behind after a sweep.
        assert c.uploads.sweep_sessions() == 0
        assert c.uploads.files.list_children("sessions") == []


def test_sweep_removes_chunks_of_expired_sessions(api: Api) -> None:
    from datetime import UTC, datetime

    _, h = api.user()
    wav = wav_bytes(0.5)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    assert api.send_raw(prep, 0, wav[:CHUNK]).status_code == 200
    uploads = api.container.uploads
    assert uploads.sweep_sessions() == 0  # open and fresh: kept
    assert len(uploads.files.list_children("sessions")) == 1

    class Later:
        def now(self) -> datetime:
            return datetime.now(UTC) + timedelta(days=2)

    uploads.clock = Later()
    assert uploads.sweep_sessions() == 1
    assert uploads.files.list_children("sessions") == []


def test_crash_between_bytes_and_record_serves_nothing_and_retries(api: Api) -> None:
    uid, h = api.user()
    wav = wav_bytes(0.5, seed=11)
    prep = api.prepare(h, len(wav), chunkBytes=CHUNK)
    for i in range(prep["total_chunks"]):
        assert api.send_raw(prep, i, wav[i * CHUNK : (i + 1) * CHUNK]).status_code == 200
    store = api.container.store
    real = store.save_all
    calls = {"n": 0}

    def crash_once(*aggregates: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("power cut after the blob was committed")
        return real(*aggregates)

    store.save_all = crash_once  # type: ignore[method-assign]
    try:
        with pytest.raises(RuntimeError):
            api.container.uploads.complete(
                store.get(__import__("uuid").UUID(prep["session_id"]), UploadSession)
            )
        # The bytes are in the store but nothing names them: nothing is served.
        assert api.client.get(f"/api/files/audio/{uid}/Track.wav", headers=h).status_code == 404
        status = api.client.get(
            "/api/mcp/upload/status",
            params={"sessionId": prep["session_id"]},
            headers={"x-mcp-upload-token": prep["upload_token"]},
        ).json()
        assert status["state"] == "open"
        assert status["missingChunks"] == []
        r = api.complete(prep)
        assert r.status_code == 200, r.text
    finally:
        store.save_all = real  # type: ignore[method-assign]
    assert api.client.get(r.json()["fileUrl"], headers=h).content == wav


def test_chunked_cover_art_is_processed(api: Api) -> None:
    uid, h = api.user()
    png = image_bytes(3200, 3000, "PNG")
    out = api.chunked(h, png, CHUNK, kind="coverArt", name="Cover Final.jpg")
    assert out["fileUrl"] == f"/api/files/cover-art/{uid}/Cover_Final.png"
    assert out["contentType"] == "image/png"
    assert out["distributionReady"] is True
    assert out["media"]["width"] == out["media"]["height"] == 3000
    assert out["media"]["originalWidth"] == 3200
    got = api.client.get(out["fileUrl"], headers=h)
    assert got.status_code == 200
    assert got.headers["etag"] == f'"{out["sha256"]}"'
    assert hashlib.sha256(got.content).hexdigest() == out["sha256"]
