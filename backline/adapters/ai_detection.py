"""AI-song detection: the offline provenance reader (default) and the Pex adapter.

``LocalProvenanceDetector`` (provider ``local-provenance``) reads the evidence a file
carries about how it was made, without listening to it:

* C2PA manifests (JUMBF boxes labelled ``c2pa``, embedded in WAV/AIFF chunks, ID3 GEOB
  frames, FLAC/PNG blocks …): an IPTC ``digitalSourceType`` of
  ``trainedAlgorithmicMedia`` / ``compositeWithTrainedAlgorithmicMedia`` is a signed
  statement that a generator made the audio; the ``claim_generator`` names it.
* Tags and comments: ID3 frames (``TXXX``, ``COMM``, ``TENC``, ``TSSE``, ``WOAS``, URL
  frames …), Vorbis comments (FLAC), RIFF ``LIST/INFO`` (``ISFT``, ``ICMT`` …) and AIFF
  text chunks, matched against the marks Suno, Udio, Stable Audio, MusicGen, Boomy,
  ElevenLabs, Mubert, AIVA, Riffusion, Soundraw and Lyria write.

No evidence is *not* proof of a human performance; the result says so in ``message``.

``PexDetector`` (provider ``pex``) calls the Pex (Vobile) AI Song Detector: OAuth 2.0
client credentials at ``{base}/oauth2/token`` (HTTP Basic client auth), then
``POST {base}/v1/ai-detector/detect`` with the audio as multipart ``file``. Pex
publishes no OpenAPI document; the response fields read here (``ai_generated`` /
``is_ai``, ``ai_score`` / ``score`` / ``probability``, ``model`` / ``predicted_model``
and its score) are an assumption kept to one parsing function, ``parse_pex_result``.
"""

from __future__ import annotations

import re
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog

from backline.application.file_ports import Detection

log = structlog.get_logger(__name__)

LOCAL_PROVIDER = "local-provenance"
LOCAL_MODEL = "provenance-metadata-v1"

# (model name, pattern) — patterns are matched case-insensitively on whole words.
GENERATORS: list[tuple[str, re.Pattern[str]]] = [
    ("Suno", re.compile(r"\bsuno(?:\.com|\.ai| ai|\b)", re.I)),
    ("Udio", re.compile(r"\budio(?:\.com|\b)", re.I)),
    ("Stable Audio", re.compile(r"\bstable ?audio\b|stableaudio\.com", re.I)),
    ("MusicGen", re.compile(r"\bmusicgen\b|\baudiocraft\b", re.I)),
    ("Boomy", re.compile(r"\bboomy(?:\.com|\b)", re.I)),
    ("ElevenLabs", re.compile(r"\beleven ?labs\b|elevenlabs\.io", re.I)),
    ("Mubert", re.compile(r"\bmubert\b", re.I)),
    ("AIVA", re.compile(r"\baiva(?:\.ai|\b)", re.I)),
    ("Riffusion", re.compile(r"\briffusion\b", re.I)),
    ("Soundraw", re.compile(r"\bsoundraw\b", re.I)),
    ("Lyria", re.compile(r"\blyria\b", re.I)),
]
AI_SOURCE_TYPES = (b"trainedAlgorithmicMedia", b"compositeWithTrainedAlgorithmicMedia")
GENERIC_AI = re.compile(
    r"\b(ai[- ]generated|generated (?:by|with) (?:an )?ai|made with ai|ai music generator)\b", re.I
)
SCAN_BYTES = 4 * 1024 * 1024  # C2PA stores sit near the start or the end of the file


@dataclass(frozen=True)
class Evidence:
    source: str  # c2pa | id3 | vorbis | riff-info | aiff | ...
    text: str
    generator: str | None
    strength: float


def _match_generator(text: str) -> str | None:
    for name, pattern in GENERATORS:
        if pattern.search(text):
            return name
    return None


def _c2pa_evidence(path: Path) -> list[Evidence]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(SCAN_BYTES)
        tail = b""
        if size > SCAN_BYTES:
            fh.seek(max(SCAN_BYTES, size - SCAN_BYTES))
            tail = fh.read(SCAN_BYTES)
    found: list[Evidence] = []
    for blob in (head, tail):
        start = blob.find(b"jumb")
        while start != -1:
            # The manifest store is a JUMBF superbox; its description box carries the
            # label "c2pa". Read forward from the box (bounded) for claims.
            window = blob[start : start + 256 * 1024]
            if b"c2pa" in window[:128]:
                generator_text = _claim_generator(window)
                ai_source = any(t in window for t in AI_SOURCE_TYPES)
                generator = _match_generator(generator_text or "") or _match_generator(
                    window.decode("latin-1")
                )
                if ai_source or generator:
                    what = "digitalSourceType trainedAlgorithmicMedia" if ai_source else ""
                    text = ", ".join(
                        p
                        for p in (
                            what,
                            f"claim_generator {generator_text}" if generator_text else "",
                        )
                        if p
                    )
                    found.append(Evidence("c2pa", text, generator, 0.99 if ai_source else 0.9))
                break
            start = blob.find(b"jumb", start + 4)
    return found


def _claim_generator(window: bytes) -> str | None:
    """The ``claim_generator`` text of a CBOR-encoded claim (major type 3 string)."""
    idx = window.find(b"claim_generator")
    if idx == -1:
        return None
    pos = idx + len(b"claim_generator")
    if pos >= len(window):
        return None
    head = window[pos]
    if head >> 5 != 3:
        return None
    info = head & 0x1F
    pos += 1
    if info < 24:
        length = info
    elif info == 24 and pos < len(window):
        length = window[pos]
        pos += 1
    elif info == 25 and pos + 1 < len(window):
        length = int.from_bytes(window[pos : pos + 2], "big")
        pos += 2
    else:
        return None
    return window[pos : pos + min(length, 500)].decode("utf-8", "replace")


def _tag_texts(path: Path) -> Iterator[tuple[str, str]]:
    """(source, text) for every textual tag the file carries."""
    import mutagen

    try:
        mf = mutagen.File(str(path))
    except Exception:
        mf = None
    if mf is not None and mf.tags is not None:
        tags = mf.tags
        source = type(tags).__name__.lower()
        if hasattr(tags, "getall") or type(tags).__name__ == "ID3":
            for frame in tags.values():
                fid = getattr(frame, "FrameID", "")
                if fid in ("APIC", "GEOB", "PRIV"):
                    continue
                parts = [getattr(frame, "desc", "")]
                for attr in ("text", "url"):
                    value = getattr(frame, attr, None)
                    if isinstance(value, list):
                        parts.extend(str(v) for v in value)
                    elif value:
                        parts.append(str(value))
                yield f"id3:{fid}", " ".join(p for p in parts if p)
        else:
            try:
                items = list(tags.items())
            except Exception:
                items = []
            for key, value in items:
                values = value if isinstance(value, list) else [value]
                for v in values:
                    if isinstance(v, str | bytes):
                        text = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
                        yield f"{source}:{key}", f"{key}={text}"
    yield from _riff_info(path)
    yield from _aiff_text(path)


def _riff_info(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            hdr = fh.read(8)
            if len(hdr) < 8:
                return
            cid, csize = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"LIST" and csize <= 1 << 20:
                body = fh.read(csize)
                if body[:4] == b"INFO":
                    i = 4
                    while i + 8 <= len(body):
                        sid, ssize = body[i : i + 4], struct.unpack("<I", body[i + 4 : i + 8])[0]
                        value = body[i + 8 : i + 8 + ssize].split(b"\0", 1)[0]
                        yield f"riff-info:{sid.decode('latin-1')}", value.decode("utf-8", "replace")
                        i += 8 + ssize + (ssize & 1)
            if cid == b"data" and csize == 0xFFFFFFFF:
                return
            pos += 8 + csize + (csize & 1)


def _aiff_text(path: Path) -> Iterator[tuple[str, str]]:
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return
        size = path.stat().st_size
        pos = 12
        while pos + 8 <= size:
            fh.seek(pos)
            hdr = fh.read(8)
            if len(hdr) < 8:
                return
            cid, csize = hdr[:4], struct.unpack(">I", hdr[4:])[0]
            if cid in (b"NAME", b"AUTH", b"ANNO", b"(c) ") and csize <= 1 << 16:
                yield (
                    f"aiff:{cid.decode('latin-1').strip()}",
                    fh.read(csize).decode("utf-8", "replace").strip("\0"),
                )
            pos += 8 + csize + (csize & 1)


class LocalProvenanceDetector:
    """Reads AI-provenance evidence carried by the file itself."""

    provider = LOCAL_PROVIDER

    def __init__(self, max_bytes: int = 4 * 1024**3) -> None:
        self.max_bytes = max_bytes

    def evidence(self, path: Path) -> list[Evidence]:
        found = _c2pa_evidence(path)
        for source, text in _tag_texts(path):
            if not text:
                continue
            generator = _match_generator(text)
            if generator:
                found.append(Evidence(source, text[:200], generator, 0.9))
            elif GENERIC_AI.search(text):
                found.append(Evidence(source, text[:200], None, 0.75))
        return found

    def detect(self, path: Path, *, content_type: str, file_name: str) -> Detection:
        found = self.evidence(path)
        notes = tuple(f"{e.source}: {e.text}" for e in found)
        if not found:
            return Detection(
                status="ok",
                contains_ai=False,
                ai_score=0.0,
                predicted_model=None,
                predicted_model_score=None,
                provider=self.provider,
                model=LOCAL_MODEL,
                message=(
                    "No AI-provenance evidence found (C2PA manifest, ID3/RIFF/Vorbis/AIFF tags). "
                    "This offline detector reads provenance metadata only; it does not analyse "
                    "the audio signal, so untagged AI audio is not detected."
                ),
            )
        best = max(found, key=lambda e: e.strength)
        ai_score = min(1.0, best.strength)
        by_model: dict[str, float] = {}
        for e in found:
            if e.generator:
                by_model[e.generator] = max(by_model.get(e.generator, 0.0), e.strength)
        model = max(by_model, key=lambda k: by_model[k]) if by_model else None
        return Detection(
            status="ok",
            contains_ai=True,
            ai_score=round(ai_score, 4),
            predicted_model=model,
            predicted_model_score=round(by_model[model], 4) if model else None,
            provider=self.provider,
            model=LOCAL_MODEL,
            message=f"AI provenance found in the file's metadata ({best.source}).",
            evidence=notes,
        )


# -- Pex ------------------------------------------------------------------------------


def parse_pex_result(body: Any, provider: str = "pex") -> Detection:
    """Map a Pex AI Song Detector response to a :class:`Detection` (assumed field names)."""
    if not isinstance(body, dict):
        raise ValueError("Pex answered with a non-object body")
    result = body.get("result")
    data: dict[str, Any] = result if isinstance(result, dict) else body

    def num(*keys: str) -> float | None:
        for k in keys:
            v = data.get(k)
            if isinstance(v, int | float) and not isinstance(v, bool):
                return float(v) if v <= 1 else float(v) / 100.0
        return None

    score = num("ai_score", "aiScore", "score", "probability", "ai_probability")
    flag = data.get("ai_generated", data.get("is_ai", data.get("containsAi")))
    contains = bool(flag) if isinstance(flag, bool) else (score is not None and score >= 0.5)
    model = data.get("predicted_model", data.get("model", data.get("predictedModel")))
    if isinstance(model, dict):
        model_name = model.get("name")
        model_score = model.get("score")
    else:
        model_name = model if isinstance(model, str) else None
        model_score = num("predicted_model_score", "model_score", "predictedModelScore")
    return Detection(
        status="ok",
        contains_ai=contains,
        ai_score=score,
        predicted_model=model_name,
        predicted_model_score=float(model_score) if isinstance(model_score, int | float) else None,
        provider=provider,
        model="ai-song-detector",
        message=None,
    )


class PexDetector:
    provider = "pex"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        base_url: str = "https://api.ae.pex.com",
        max_bytes: int = 200 * 1024 * 1024,
        timeout: float = 120.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._auth = (client_id, client_secret)
        self._client = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def _access_token(self) -> str:
        with self._lock:
            if self._token and self._token[1] > time.monotonic() + 30:
                return self._token[0]
            resp = self._client.post(
                "/oauth2/token", data={"grant_type": "client_credentials"}, auth=self._auth
            )
            resp.raise_for_status()
            body = resp.json()
            token = str(body["access_token"])
            self._token = (token, time.monotonic() + float(body.get("expires_in", 300)))
            return token

    def detect(self, path: Path, *, content_type: str, file_name: str) -> Detection:
        try:
            token = self._access_token()
            with open(path, "rb") as fh:
                resp = self._client.post(
                    "/v1/ai-detector/detect",
                    headers={"Authorization": f"Bearer {token}"},
                    files={"file": (file_name, fh, content_type)},
                )
            if resp.status_code == 413:
                return _failed(self.provider, "too_large", "Pex refused the file as too large.")
            resp.raise_for_status()
            return parse_pex_result(resp.json(), self.provider)
        except (httpx.HTTPError, ValueError, KeyError) as e:
            log.warning("pex_detection_failed", error=type(e).__name__)
            return _failed(
                self.provider, "download_failed", f"Pex detection failed: {type(e).__name__}."
            )


def _failed(provider: str, status: str, message: str) -> Detection:
    return Detection(
        status=status,
        contains_ai=None,
        ai_score=None,
        predicted_model=None,
        predicted_model_score=None,
        provider=provider,
        model="ai-song-detector",
        message=message,
    )


class DisabledDetector:
    """``BACKLINE_AI_DETECTOR=off``: every call is ``skipped`` (nothing cached)."""

    provider = "none"
    max_bytes = 1 << 62

    def detect(self, path: Path, *, content_type: str, file_name: str) -> Detection:
        return _failed(self.provider, "skipped", "AI detection is turned off on this server.")
