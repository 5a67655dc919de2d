"""Upload, AI-detection and cover-art settings (``BACKLINE_UPLOAD_*``, ``…_COVER_ART_*`` …).

| variable | default | meaning |
|---|---|---|
| ``BACKLINE_UPLOAD_MAX_AUDIO_BYTES`` | 2 GiB | largest audio file |
| ``BACKLINE_UPLOAD_MAX_COVER_BYTES`` | 50 MiB | largest cover-art file |
| ``BACKLINE_UPLOAD_MAX_DIRECT_BYTES`` | 512 MiB | largest one-request multipart upload |
| ``BACKLINE_UPLOAD_MAX_INLINE_BYTES`` | 8 MiB | largest base64 ``upload_file`` payload |
| ``BACKLINE_UPLOAD_CHUNK_BYTES`` | 8 MiB | chunk size of a chunked session |
| ``BACKLINE_UPLOAD_SESSION_TTL`` | 86400 | upload-token lifetime, seconds |
| ``BACKLINE_UPLOAD_MAX_AUDIO_SECONDS`` | 14400 | longest audio accepted (zip-bomb guard) |
| ``BACKLINE_UPLOAD_MAX_IMAGE_PIXELS`` | 50000000 | largest image (decompression-bomb guard) |
| ``BACKLINE_UPLOAD_ISOLATE_DECODERS`` | ``1`` | decode in worker processes (``0``: in-process) |
| ``BACKLINE_AI_DETECTOR`` | ``local`` | ``local`` (provenance reader), ``pex`` or ``off`` |
| ``BACKLINE_PEX_CLIENT_ID`` / ``BACKLINE_PEX_CLIENT_SECRET`` | — | Pex OAuth client credentials |
| ``BACKLINE_PEX_BASE_URL`` | ``https://api.ae.pex.com`` | Pex API |
| ``BACKLINE_AI_DETECTOR_MAX_BYTES`` | 200 MiB pex, 4 GiB local | larger: ``too_large`` |
| ``BACKLINE_COVER_ART_GENERATOR`` | ``local`` | ``local`` (procedural) or ``gemini`` |
| ``BACKLINE_GEMINI_API_KEY`` | — | Gemini API key |
| ``BACKLINE_GEMINI_BASE_URL`` | ``https://generativelanguage.googleapis.com`` | Gemini API |
| ``BACKLINE_COVER_ART_SIZE`` | 3000 | side of the procedural image, pixels |
| ``BACKLINE_RATE_LIMIT_COVER_ART`` | ``5 per 120 seconds`` | per-user budget |
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


class UploadSettingsError(ValueError):
    pass


def _int(name: str, value: str, default: int, minimum: int = 1) -> int:
    if not value:
        return default
    try:
        parsed = int(value)
    except ValueError:
        raise UploadSettingsError(f"BACKLINE_{name} must be an integer, got {value!r}") from None
    if parsed < minimum:
        raise UploadSettingsError(f"BACKLINE_{name} must be at least {minimum}")
    return parsed


@dataclass(frozen=True)
class UploadSettings:
    max_audio_bytes: int = 2 * 1024**3
    max_cover_bytes: int = 50 * 1024**2
    max_direct_bytes: int = 512 * 1024**2
    max_inline_bytes: int = 8 * 1024**2
    chunk_bytes: int = 8 * 1024**2
    session_ttl_seconds: int = 86400
    max_audio_seconds: int = 4 * 3600
    max_image_pixels: int = 50_000_000
    isolate_decoders: bool = True
    ai_detector: str = "local"
    pex_client_id: str = ""
    pex_client_secret: str = ""
    pex_base_url: str = "https://api.ae.pex.com"
    ai_detector_max_bytes: int = 0  # 0: the detector's own default
    cover_art_generator: str = "local"
    gemini_api_key: str = ""
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    cover_art_size: int = 3000
    rate_limit_cover_art: str = "5 per 120 seconds"

    @staticmethod
    def from_env(get: Callable[..., str]) -> UploadSettings:
        detector = get("AI_DETECTOR", "local").strip().lower() or "local"
        if detector not in ("local", "pex", "off"):
            raise UploadSettingsError("BACKLINE_AI_DETECTOR must be local, pex or off")
        pex_id, pex_secret = get("PEX_CLIENT_ID"), get("PEX_CLIENT_SECRET")
        if detector == "pex" and not (pex_id and pex_secret):
            raise UploadSettingsError(
                "BACKLINE_AI_DETECTOR=pex needs BACKLINE_PEX_CLIENT_ID and "
                "BACKLINE_PEX_CLIENT_SECRET"
            )
        generator = get("COVER_ART_GENERATOR", "local").strip().lower() or "local"
        if generator not in ("local", "gemini"):
            raise UploadSettingsError("BACKLINE_COVER_ART_GENERATOR must be local or gemini")
        if generator == "gemini" and not get("GEMINI_API_KEY"):
            raise UploadSettingsError(
                "BACKLINE_COVER_ART_GENERATOR=gemini needs BACKLINE_GEMINI_API_KEY"
            )
        limit = get("RATE_LIMIT_COVER_ART") or "5 per 120 seconds"
        try:
            from limits import parse

            parse(limit)
        except ValueError:
            raise UploadSettingsError(
                f"BACKLINE_RATE_LIMIT_COVER_ART is not a rate limit: {limit!r}"
            ) from None
        return UploadSettings(
            max_audio_bytes=_int(
                "UPLOAD_MAX_AUDIO_BYTES", get("UPLOAD_MAX_AUDIO_BYTES"), 2 * 1024**3
            ),
            max_cover_bytes=_int(
                "UPLOAD_MAX_COVER_BYTES", get("UPLOAD_MAX_COVER_BYTES"), 50 * 1024**2
            ),
            max_direct_bytes=_int(
                "UPLOAD_MAX_DIRECT_BYTES", get("UPLOAD_MAX_DIRECT_BYTES"), 512 * 1024**2
            ),
            max_inline_bytes=_int(
                "UPLOAD_MAX_INLINE_BYTES", get("UPLOAD_MAX_INLINE_BYTES"), 8 * 1024**2
            ),
            chunk_bytes=_int(
                "UPLOAD_CHUNK_BYTES", get("UPLOAD_CHUNK_BYTES"), 8 * 1024**2, 64 * 1024
            ),
            session_ttl_seconds=_int("UPLOAD_SESSION_TTL", get("UPLOAD_SESSION_TTL"), 86400),
            max_audio_seconds=_int(
                "UPLOAD_MAX_AUDIO_SECONDS", get("UPLOAD_MAX_AUDIO_SECONDS"), 4 * 3600
            ),
            max_image_pixels=_int(
                "UPLOAD_MAX_IMAGE_PIXELS", get("UPLOAD_MAX_IMAGE_PIXELS"), 50_000_000
            ),
            isolate_decoders=(get("UPLOAD_ISOLATE_DECODERS") or "1").strip().lower()
            not in ("0", "false", "no", "off"),
            ai_detector=detector,
            pex_client_id=pex_id,
            pex_client_secret=pex_secret,
            pex_base_url=(get("PEX_BASE_URL") or "https://api.ae.pex.com").rstrip("/"),
            ai_detector_max_bytes=_int(
                "AI_DETECTOR_MAX_BYTES", get("AI_DETECTOR_MAX_BYTES"), 0, minimum=0
            ),
            cover_art_generator=generator,
            gemini_api_key=get("GEMINI_API_KEY"),
            gemini_base_url=(
                get("GEMINI_BASE_URL") or "https://generativelanguage.googleapis.com"
            ).rstrip("/"),
            cover_art_size=_int("COVER_ART_SIZE", get("COVER_ART_SIZE"), 3000, 64),
            rate_limit_cover_art=limit,
        )
