"""Wiring of the upload ports: file store, inspector, AI detector, cover-art generator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from backline.adapters.ai_detection import DisabledDetector, LocalProvenanceDetector, PexDetector
from backline.adapters.cover_art import (
    GeminiCoverArt,
    IsolatedProceduralCoverArt,
    ProceduralCoverArt,
)
from backline.adapters.filestore import LocalFileStore
from backline.adapters.media import IsolatedInspector, MediaLimits, SoundfilePillowInspector
from backline.application.file_ports import AiDetector, CoverArtGenerator, MediaInspector
from backline.application.store import EventStore
from backline.application.uploads import UploadPolicy, UploadService
from backline.infra.upload_settings import UploadSettings


def build_upload_service(
    settings: UploadSettings, data_dir: Path, store: EventStore
) -> UploadService:
    files = LocalFileStore(data_dir / "files")
    files.clean_staging(older_than_seconds=24 * 3600)
    limits = MediaLimits(
        max_audio_seconds=float(settings.max_audio_seconds),
        max_image_pixels=settings.max_image_pixels,
    )
    inspector: MediaInspector = (
        IsolatedInspector(limits) if settings.isolate_decoders else SoundfilePillowInspector(limits)
    )
    detector: AiDetector
    if settings.ai_detector == "pex":
        detector = PexDetector(
            settings.pex_client_id,
            settings.pex_client_secret,
            base_url=settings.pex_base_url,
            max_bytes=settings.ai_detector_max_bytes or 200 * 1024 * 1024,
        )
    elif settings.ai_detector == "off":
        detector = DisabledDetector()
    else:
        detector = LocalProvenanceDetector(max_bytes=settings.ai_detector_max_bytes or 4 * 1024**3)
    generator: CoverArtGenerator
    if settings.cover_art_generator == "gemini":
        generator = GeminiCoverArt(settings.gemini_api_key, base_url=settings.gemini_base_url)
    else:
        procedural = IsolatedProceduralCoverArt if settings.isolate_decoders else ProceduralCoverArt
        generator = procedural(
            size=settings.cover_art_size, max_base_pixels=settings.max_image_pixels
        )
    policy = UploadPolicy(
        max_audio_bytes=settings.max_audio_bytes,
        max_cover_bytes=settings.max_cover_bytes,
        max_direct_bytes=settings.max_direct_bytes,
        max_inline_bytes=settings.max_inline_bytes,
        chunk_bytes=settings.chunk_bytes,
        min_chunk_bytes=min(64 * 1024, settings.chunk_bytes),
        max_chunk_bytes=max(32 * 1024**2, settings.chunk_bytes),
        session_ttl=timedelta(seconds=settings.session_ttl_seconds),
        cover_art_rate_limit=settings.rate_limit_cover_art,
    )
    service = UploadService(store, files, inspector, detector, generator, policy=policy)
    service.sweep_sessions()  # chunks of sessions that ended or expired while we were down
    return service
