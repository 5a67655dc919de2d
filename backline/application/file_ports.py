"""Ports for uploads: file storage, media inspection, AI detection, cover-art generation.

Each has a local default in ``backline/adapters`` that does real work offline and names
itself, and room for (or an implementation of) the real outside service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol


class FileStore(Protocol):
    """Durable bytes by key. Keys are ``/``-separated, made by the application only.

    ``new_staging_path`` hands out a private path on local disk (same filesystem as the
    store when the store is local) for the application to write; ``commit`` makes it the
    content of ``key`` atomically (fsync, then rename): a reader sees the old content,
    nothing, or the whole new content — never part of it.
    """

    name: str

    def new_staging_path(self, hint: str = "") -> Path: ...

    def commit(self, staging_path: Path, key: str, *, replace: bool = True) -> None: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int | None: ...

    def open_read(self, key: str) -> BinaryIO: ...

    def local_path(self, key: str) -> Path | None:
        """A local path to stream from (None when the store is remote)."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> None: ...

    def list_children(self, prefix: str) -> list[str]:
        """Names directly under ``prefix`` (one level), for housekeeping."""
        ...


@dataclass(frozen=True)
class Inspection:
    """What content validation proved about a file."""

    kind: str  # audio | coverArt
    format: str  # WAV, FLAC, AIFF, MP3, JPEG, PNG
    extension: str
    content_type: str
    media: dict[str, Any]
    warnings: tuple[str, ...]
    distribution_ready: bool
    # For images the stored file is the processed one (EXIF applied, RGB, square crop).
    replacement: Path | None = None


class MediaInspector(Protocol):
    def inspect(self, kind: str, path: Path, declared_type: str | None = None) -> Inspection:
        """Sniff, fully decode and check a file; raise ``ValidationFailed`` saying why not."""
        ...


@dataclass(frozen=True)
class Detection:
    status: str  # ok | skipped | download_failed | too_large
    contains_ai: bool | None
    ai_score: float | None
    predicted_model: str | None
    predicted_model_score: float | None
    provider: str
    model: str
    message: str | None
    evidence: tuple[str, ...] = field(default_factory=tuple)


class AiDetector(Protocol):
    provider: str
    max_bytes: int

    def detect(self, path: Path, *, content_type: str, file_name: str) -> Detection: ...


@dataclass(frozen=True)
class GeneratedImage:
    data: bytes
    mime_type: str
    provider: str
    model: str
    model_variant: str
    image_size: str


class CoverArtGenerator(Protocol):
    provider: str

    def generate(
        self, prompt: str, base: bytes | None = None, base_mime: str | None = None
    ) -> GeneratedImage: ...


class ImageGenerationFailed(Exception):
    """The generator could not produce an image (outside service down, refused)."""
