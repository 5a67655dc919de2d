"""The releases' view of uploads (issue 4): file facts, AI detection, bytes for delivery.

Implements :class:`~backline.application.releases.ReleaseFiles` and
:class:`~backline.application.delivery.FileOpener` over the
:class:`~backline.application.uploads.UploadService`: a file counts only for its owner
(anyone else's URL is "no such file"), its content validation is the one done at upload
(``distribution_ready`` and the store requirements' problems), and its AI detection is
the ``AiDetected`` event on the stored file (run here first when it never ran).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, BinaryIO
from uuid import UUID

from backline.application.releases import SettledCache, load_fresh, load_fresh_many
from backline.application.uploads import UploadService, blob_key
from backline.domain.errors import DomainError
from backline.domain.releases import FileFacts
from backline.domain.uploads import StoredFile, parse_file_url


def _media(raw: dict[str, Any]) -> dict[str, Any]:
    """Upload media facts (camelCase) → the keys the ERN builder reads."""
    out: dict[str, Any] = {"format": raw.get("format")}
    for src, dst in (
        ("sampleRate", "sample_rate"),
        ("bitDepth", "bit_depth"),
        ("channels", "channels"),
        ("durationSeconds", "duration_seconds"),
        ("width", "width"),
        ("height", "height"),
    ):
        if raw.get(src) is not None:
            out[dst] = raw[src]
    return out


def _problems(f: StoredFile) -> tuple[str, ...]:
    found: list[str] = []
    for req in f.media.get("requirements") or []:
        if isinstance(req, dict):
            found.extend(str(p) for p in req.get("problems") or [])
    return tuple(found) or tuple(f.warnings)


class UploadedReleaseFiles:
    def __init__(self, uploads: UploadService) -> None:
        self.uploads = uploads
        # Stored files only gain events (the AI detection): each submission reads just
        # the events recorded since the copy kept here (same query as before).
        self.files_cache = SettledCache((StoredFile,))

    def _file(self, account_id: UUID, url: str) -> StoredFile | None:
        """The caller's stored file (None when missing, malformed or someone else's)."""
        try:
            ref = parse_file_url(url)
        except DomainError:
            return None
        f = load_fresh(self.uploads.store, ref.id, StoredFile)
        return f if f is not None and f.owner_id == account_id else None

    def facts_many(
        self, account_id: UUID, urls: Sequence[str], also: Sequence[UUID] = ()
    ) -> tuple[dict[str, FileFacts | None], dict[UUID, Any]]:
        ids: dict[str, UUID] = {}
        for url in urls:
            try:
                ids[url] = parse_file_url(url).id
            except DomainError:
                continue
        loaded = load_fresh_many(self.uploads.store, [*ids.values(), *also], self.files_cache)
        facts: dict[str, FileFacts | None] = {}
        for url in urls:
            f = loaded.get(ids[url]) if url in ids else None
            if isinstance(f, StoredFile) and f.owner_id == account_id:
                facts[url] = self._facts_of(f)
            else:
                facts[url] = None
        return facts, {i: loaded.get(i) for i in also}

    def facts(self, account_id: UUID, url: str) -> FileFacts | None:
        f = self._file(account_id, url)
        return self._facts_of(f) if f is not None else None

    def _facts_of(self, f: StoredFile) -> FileFacts:
        d = f.detection
        return FileFacts(
            url=f.ref.url,
            kind=f.ref.kind,
            owner_id=f.owner_id,
            sha256=f.sha256,
            size=f.size,
            content_type=f.content_type,
            media=_media(f.media),
            distribution_ready=f.distribution_ready,
            problems=_problems(f),
            contains_ai=d["contains_ai"] if d else None,
            detection_status=d["status"] if d else None,
            detection_provider=d["provider"] if d else None,
            detection_model=d["model"] if d else None,
            predicted_model=d["predicted_model"] if d else None,
        )

    def ensure_detected(
        self, account_id: UUID, url: str, *, release_id: UUID, track_index: int
    ) -> FileFacts | None:
        f = self._file(account_id, url)
        if f is None:
            return None
        if f.detection is None and f.bucket == "audio":
            self.uploads.detect(
                account_id, url, release_id=str(release_id), track_index=track_index
            )
        return self.facts(account_id, url)

    def open(self, owner_id: UUID, url: str) -> BinaryIO:
        f = self._file(owner_id, url)
        if f is None:
            raise LookupError(f"{url} is not a stored file of {owner_id}")
        return self.uploads.files.open_read(blob_key(f.sha256))
