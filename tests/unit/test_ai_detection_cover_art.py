"""The offline AI-provenance detector, the Pex adapter, and cover-art generators."""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import httpx
import mutagen.flac
import mutagen.id3
import pytest
from PIL import Image

from backline.adapters.ai_detection import LocalProvenanceDetector, PexDetector, parse_pex_result
from backline.adapters.cover_art import GeminiCoverArt, ProceduralCoverArt
from backline.adapters.media import SoundfilePillowInspector
from backline.application.file_ports import Detection, ImageGenerationFailed
from tests.uploads_helpers import audio_bytes, wav_bytes, with_riff_info

DETECTOR = LocalProvenanceDetector()


def detect(path: Path) -> Detection:
    return DETECTOR.detect(path, content_type="audio/wav", file_name=path.name)


def test_clean_file_has_no_evidence_and_says_so(tmp_path: Path) -> None:
    p = tmp_path / "clean.wav"
    p.write_bytes(with_riff_info(wav_bytes(0.2), {"ISFT": "Lavf60.3.100", "IART": "Ada"}))
    d = detect(p)
    assert d.status == "ok"
    assert d.contains_ai is False
    assert d.ai_score == 0.0
    assert d.predicted_model is None
    assert d.provider == "local-provenance"
    assert d.message
    assert "does not analyse the audio signal" in d.message


def test_riff_info_written_by_suno(tmp_path: Path) -> None:
    p = tmp_path / "suno.wav"
    p.write_bytes(with_riff_info(wav_bytes(0.2), {"ICMT": "Made with Suno v4.5", "INAM": "x"}))
    d = detect(p)
    assert d.contains_ai is True
    assert d.predicted_model == "Suno"
    assert d.ai_score is not None
    assert d.ai_score >= 0.9
    assert any("riff-info:ICMT" in e for e in d.evidence)


def test_id3_tags_on_mp3(tmp_path: Path) -> None:
    p = tmp_path / "udio.mp3"
    p.write_bytes(audio_bytes("MP3", 0.5))
    tags = mutagen.id3.ID3()
    tags.add(mutagen.id3.WOAS(url="https://www.udio.com/songs/abc"))
    tags.add(mutagen.id3.TIT2(encoding=3, text=["Song"]))
    tags.save(str(p))
    d = detect(p)
    assert d.contains_ai is True
    assert d.predicted_model == "Udio"


def test_vorbis_comment_on_flac(tmp_path: Path) -> None:
    p = tmp_path / "s.flac"
    p.write_bytes(audio_bytes("FLAC", 0.5))
    f = mutagen.flac.FLAC(str(p))
    f["comment"] = "generated with Stable Audio 2.0"
    f.save()
    d = detect(p)
    assert d.contains_ai is True
    assert d.predicted_model == "Stable Audio"
    # The tagged file is still valid audio.
    assert SoundfilePillowInspector().inspect("audio", p).format == "FLAC"


def test_c2pa_manifest_with_ai_source_type(tmp_path: Path) -> None:
    # A JUMBF superbox labelled c2pa carrying a claim and an IPTC digital source type.
    manifest = (
        b"\x00\x00\x01\x00jumb\x00\x00\x00\x1ejumdc2pa\x00\x11\x00\x10\x80\x00\xaa\x00\x38\x9b\x71"
        b"c2pa\x00"
        b"\xa3oclaim_generatorkUdio/1.2.0"
        b"\x78\x2dhttp://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    )
    chunk = b"C2PA" + struct.pack("<I", len(manifest)) + manifest
    wav = bytearray(wav_bytes(0.2) + chunk)
    wav[4:8] = struct.pack("<I", len(wav) - 8)
    p = tmp_path / "c2pa.wav"
    p.write_bytes(bytes(wav))
    d = detect(p)
    assert d.contains_ai is True
    assert d.ai_score == 0.99
    assert d.predicted_model == "Udio"
    assert any(e.startswith("c2pa:") for e in d.evidence)


def test_words_that_merely_contain_a_name_are_not_evidence(tmp_path: Path) -> None:
    p = tmp_path / "x.wav"
    p.write_bytes(with_riff_info(wav_bytes(0.2), {"INAM": "Sunoco Studios", "IART": "Audiology"}))
    assert detect(p).contains_ai is False


def test_parse_pex_result_variants() -> None:
    d = parse_pex_result(
        {"ai_generated": True, "ai_score": 0.93, "predicted_model": {"name": "Suno", "score": 0.81}}
    )
    assert (d.contains_ai, d.ai_score, d.predicted_model, d.predicted_model_score) == (
        True,
        0.93,
        "Suno",
        0.81,
    )
    d = parse_pex_result({"result": {"score": 12, "model": "Udio"}})
    assert d.contains_ai is False
    assert d.ai_score == 0.12
    assert d.predicted_model == "Udio"
    with pytest.raises(ValueError):
        parse_pex_result([1, 2])


def test_pex_adapter_against_a_local_peer(tmp_path: Path) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/oauth2/token":
            assert request.headers["authorization"].startswith("Basic ")
            return httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        assert request.headers["authorization"] == "Bearer tok"
        assert b'name="file"' in request.read()
        return httpx.Response(200, json={"ai_generated": True, "ai_score": 0.9, "model": "Boomy"})

    det = PexDetector("id", "secret", transport=httpx.MockTransport(handler))
    p = tmp_path / "a.wav"
    p.write_bytes(wav_bytes(0.1))
    d = det.detect(p, content_type="audio/wav", file_name="a.wav")
    d2 = det.detect(p, content_type="audio/wav", file_name="a.wav")
    assert d.status == d2.status == "ok"
    assert d.provider == "pex"
    assert d.predicted_model == "Boomy"
    assert seen.count("/oauth2/token") == 1  # token reused

    down = PexDetector("id", "s", transport=httpx.MockTransport(lambda r: httpx.Response(503)))
    assert down.detect(p, content_type="audio/wav", file_name="a.wav").status == "download_failed"


def test_procedural_cover_art_is_deterministic_square_and_valid(tmp_path: Path) -> None:
    gen = ProceduralCoverArt(size=800)
    a = gen.generate("Lo-fi vinyl in a sunset cafe")
    b = gen.generate("Lo-fi vinyl in a sunset cafe")
    c = gen.generate("Industrial noise in a tunnel")
    assert a.data == b.data
    assert a.data != c.data
    assert a.provider == "local-procedural"
    with Image.open(io.BytesIO(a.data)) as im:
        assert im.size == (800, 800)
        assert im.format == "PNG"
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is None or len(colours) > 100  # real artwork, not a flat fill
    p = tmp_path / "gen.png"
    p.write_bytes(a.data)
    ins = SoundfilePillowInspector().inspect("coverArt", p)
    assert ins.format == "PNG"
    assert not ins.media["cropped"]
    edited = gen.generate("make it neon", base=a.data)
    assert edited.data != a.data
    assert gen.generate("make it neon", base=a.data).data == edited.data
    with pytest.raises(ImageGenerationFailed):
        gen.generate("x", base=b"not an image")


def test_full_size_procedural_art_meets_distribution_size(tmp_path: Path) -> None:
    art = ProceduralCoverArt().generate("Desert highway at dusk")
    p = tmp_path / "big.png"
    p.write_bytes(art.data)
    ins = SoundfilePillowInspector().inspect("coverArt", p)
    assert ins.distribution_ready
    assert ins.media["width"] == 3000


def test_gemini_adapter_against_a_local_peer() -> None:
    png = io.BytesIO()
    Image.new("RGB", (1024, 1024), (10, 20, 30)).save(png, "PNG")
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["x-goog-api-key"] == "k"
        assert request.url.path.endswith("gemini-3.1-flash-image-preview:generateContent")
        bodies.append(json.loads(request.content))
        data = base64.b64encode(png.getvalue()).decode()
        return httpx.Response(
            200,
            json={
                "candidates": [
                    {
                        "content": {
                            "parts": [{"inlineData": {"mimeType": "image/png", "data": data}}]
                        }
                    }
                ]
            },
        )

    gen = GeminiCoverArt("k", transport=httpx.MockTransport(handler))
    out = gen.generate("a cat", base=b"\x89PNGbase", base_mime="image/png")
    assert out.data == png.getvalue()
    assert out.model_variant == "nano_banana_2"
    parts = bodies[0]["contents"][0]["parts"]  # type: ignore[index]
    assert parts[0] == {"text": "a cat"}
    assert "inline_data" in parts[1]
    refused = GeminiCoverArt(
        "k", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"candidates": []}))
    )
    with pytest.raises(ImageGenerationFailed):
        refused.generate("x")


def test_isolated_renderer_gives_the_same_art() -> None:
    from backline.adapters.cover_art import IsolatedProceduralCoverArt

    local = ProceduralCoverArt(size=500).generate("Neon tunnel")
    isolated = IsolatedProceduralCoverArt(size=500).generate("Neon tunnel")
    assert isolated.data == local.data
    with pytest.raises(ImageGenerationFailed):
        IsolatedProceduralCoverArt(size=500).generate("x", base=b"not an image")
