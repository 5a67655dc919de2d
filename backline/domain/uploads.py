"""Uploads: published files, chunked upload sessions and AI-detection results.

Pure domain: no I/O. Two aggregates:

* :class:`StoredFile` — one published file at ``/api/files/{bucket}/{owner}/{name}``. Its
  id is ``uuid5(FILE_NAMESPACE, "{bucket}/{owner}/{name}")``, so the aggregate *is* the
  claim on the name: two publishers of one name race to create the same aggregate at
  version 1 and the store lets exactly one win. It records the content digest (the bytes
  live content-addressed in the file store), the media facts found by validation, and
  every AI-detection result (``AiDetected``), which billing reads.
* :class:`UploadSession` — a chunked upload: prepared with a size and a fixed chunk size,
  records each chunk receipt (index, size, sha256), and ends ``Completed`` (with the
  published file) or ``Rejected`` (content failed validation). A stored chunk index can be
  re-sent with the same bytes (no-op) but never replaced (``chunk_conflict``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, DomainError, NotFound, ValidationFailed

FILE_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/stored-file")

Kind = Literal["audio", "coverArt"]
KINDS: tuple[str, ...] = ("audio", "coverArt")
BUCKET_BY_KIND: dict[str, str] = {"audio": "audio", "coverArt": "cover-art"}
KIND_BY_BUCKET: dict[str, str] = {v: k for k, v in BUCKET_BY_KIND.items()}
FILES_PREFIX = "/api/files/"
MAX_FILE_NAME = 180

DETECTION_STATUSES = ("ok", "skipped", "download_failed", "too_large")


class PayloadTooLarge(DomainError):
    """A body, chunk or file exceeds its limit (maps to 413)."""

    code = "payload_too_large"


class UnsupportedMedia(ValidationFailed):
    """The content is not a format this bucket accepts (maps to 422 / 415 on REST)."""

    code = "unsupported_media"


class InvalidUploadToken(DomainError):
    """The upload token is missing, wrong, expired or for another session (401)."""

    code = "invalid_upload_token"


def parse_kind(value: str | None) -> str:
    if value not in KINDS:
        raise ValidationFailed(
            "type must be 'audio' or 'coverArt'.", code="invalid_upload_type", field="type"
        )
    return value


_UNSAFE = re.compile(r"[^A-Za-z0-9._()\- ]+")


def safe_file_name(raw: str | None, *, default: str = "file") -> str:
    """A file name safe in a URL path and on any disk: no directories, no traversal.

    Only the last path component is kept (``/`` and ``\\`` both split), the name is NFKC
    normalised, anything outside ``[A-Za-z0-9._()- ]`` becomes ``_``, leading dots and
    spaces are stripped (no hidden files, no ``..``) and the length is capped.
    """
    if raw is not None and not isinstance(raw, str):
        raise ValidationFailed("fileName must be a string.", code="invalid_file_name")
    name = unicodedata.normalize("NFKC", raw or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip().lstrip(". ").replace(" ", "_")
    name = re.sub(r"_+", "_", name)
    if not name or set(name) <= {".", "_"}:
        name = default
    if len(name) > MAX_FILE_NAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: MAX_FILE_NAME - len(ext) - 1] + "." + ext
        else:
            name = name[:MAX_FILE_NAME]
    return name


def with_extension(name: str, ext: str) -> str:
    """``name`` with its extension replaced by ``ext`` (the one the content proves)."""
    stem, dot, _old = name.rpartition(".")
    if not dot or not stem:
        stem = name
    return f"{stem}.{ext}"


def with_suffix(name: str, suffix: str) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return f"{name}-{suffix}"
    return f"{stem}-{suffix}.{ext}"


@dataclass(frozen=True)
class FileRef:
    bucket: str
    owner_id: UUID
    name: str

    @property
    def url(self) -> str:
        return f"{FILES_PREFIX}{self.bucket}/{self.owner_id}/{self.name}"

    @property
    def key(self) -> str:
        """The seed's ``key`` (``USER_ID/<name>``)."""
        return f"{self.owner_id}/{self.name}"

    @property
    def kind(self) -> str:
        return KIND_BY_BUCKET[self.bucket]

    @property
    def id(self) -> UUID:
        return stored_file_id(self.bucket, self.owner_id, self.name)


def stored_file_id(bucket: str, owner_id: UUID, name: str) -> UUID:
    return uuid5(FILE_NAMESPACE, f"{bucket}/{owner_id}/{name}")


def parse_file_url(url: str | None, *, what: str = "fileUrl") -> FileRef:
    """``/api/files/{bucket}/{user}/{name}`` (or an absolute URL ending so) → :class:`FileRef`.

    Anything else — another prefix, an unknown bucket, a malformed user id, a name that
    is not already safe (traversal) — is ``NotFound`` for that URL.
    """
    if not isinstance(url, str) or not url:
        raise ValidationFailed(f"{what} is required.", code="invalid_file_url", field=what)
    path = url
    if "://" in path:
        after = path.split("://", 1)[1]
        path = "/" + after.split("/", 1)[1] if "/" in after else "/"
    path = path.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith(FILES_PREFIX):
        raise ValidationFailed(
            f"{what} must be a Backline file URL (/api/files/...).",
            code="invalid_file_url",
            field=what,
        )
    parts = path[len(FILES_PREFIX) :].split("/")
    if len(parts) != 3 or parts[0] not in KIND_BY_BUCKET:
        raise NotFound("File not found.", code="file_not_found")
    try:
        owner = UUID(parts[1])
    except ValueError:
        raise NotFound("File not found.", code="file_not_found") from None
    name = parts[2]
    if not name or safe_file_name(name) != name:
        raise NotFound("File not found.", code="file_not_found")
    return FileRef(bucket=parts[0], owner_id=owner, name=name)


# -- media facts and store requirements ------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    store: str
    ok: bool
    problems: tuple[str, ...]


DISTRIBUTION_MIN_RATE = 44_100
DISTRIBUTION_MIN_BITS = 16
DISTRIBUTION_LOSSLESS = ("WAV", "FLAC", "AIFF")
DISTRIBUTION_MIN_COVER = 3000


def audio_requirements(
    fmt: str, sample_rate: int, bit_depth: int | None, channels: int
) -> Requirement:
    """What distribution stores ask of a master: lossless, ≥ 44.1 kHz, ≥ 16-bit, stereo."""
    problems: list[str] = []
    if fmt not in DISTRIBUTION_LOSSLESS:
        problems.append(f"{fmt} is lossy; stores require a lossless WAV, FLAC or AIFF master.")
    if sample_rate < DISTRIBUTION_MIN_RATE:
        problems.append(f"sample rate {sample_rate} Hz is below 44100 Hz.")
    if bit_depth is not None and bit_depth < DISTRIBUTION_MIN_BITS:
        problems.append(f"bit depth {bit_depth} is below 16 bits.")
    if channels != 2:
        problems.append(f"{channels} channel(s); stores require stereo (2 channels).")
    return Requirement(store="distribution", ok=not problems, problems=tuple(problems))


def cover_requirements(width: int, height: int) -> Requirement:
    problems: list[str] = []
    if min(width, height) < DISTRIBUTION_MIN_COVER:
        problems.append(
            f"{width}x{height} is below the {DISTRIBUTION_MIN_COVER}x{DISTRIBUTION_MIN_COVER}"
            " stores require."
        )
    return Requirement(store="distribution", ok=not problems, problems=tuple(problems))


# -- aggregates -------------------------------------------------------------------------


class StoredFile(Aggregate):
    """A published file; the aggregate's existence is the name's claim."""

    TOPIC = "backline.StoredFile"

    class Created(Aggregate.Created):
        TOPIC = "backline.StoredFile.Created"

    class Event(Aggregate.Event):
        pass

    class Published(Created):
        TOPIC = "backline.StoredFile.Published"
        owner_id: UUID
        bucket: str
        name: str
        size: int
        sha256: str
        content_type: str
        media: dict[str, Any]
        warnings: list[str]
        distribution_ready: bool
        source: str
        session_id: UUID | None
        original_name: str

    @staticmethod
    def create_id(bucket: str, owner_id: UUID, name: str, **_: Any) -> UUID:
        return stored_file_id(bucket, owner_id, name)

    @event(Published)
    def __init__(
        self,
        owner_id: UUID,
        bucket: str,
        name: str,
        size: int,
        sha256: str,
        content_type: str,
        media: dict[str, Any],
        warnings: list[str],
        distribution_ready: bool,
        source: str,
        session_id: UUID | None,
        original_name: str,
    ) -> None:
        self.owner_id = owner_id
        self.bucket = bucket
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.content_type = content_type
        self.media = media
        self.warnings = warnings
        self.distribution_ready = distribution_ready
        self.source = source
        self.session_id = session_id
        self.original_name = original_name
        self.detection: dict[str, Any] | None = None

    @property
    def ref(self) -> FileRef:
        return FileRef(self.bucket, self.owner_id, self.name)

    class AiDetected(Event):
        TOPIC = "backline.StoredFile.AiDetected"
        status: str
        contains_ai: bool | None
        ai_score: float | None
        predicted_model: str | None
        predicted_model_score: float | None
        provider: str
        model: str
        message: str | None
        evidence: list[str]
        release_id: str | None
        conversation_id: str | None
        track_index: int | None
        cacheable: bool

    @event(AiDetected)
    def _ai_detected(
        self,
        status: str,
        contains_ai: bool | None,
        ai_score: float | None,
        predicted_model: str | None,
        predicted_model_score: float | None,
        provider: str,
        model: str,
        message: str | None,
        evidence: list[str],
        release_id: str | None,
        conversation_id: str | None,
        track_index: int | None,
        cacheable: bool,
    ) -> None:
        if cacheable:
            self.detection = {
                "status": status,
                "contains_ai": contains_ai,
                "ai_score": ai_score,
                "predicted_model": predicted_model,
                "predicted_model_score": predicted_model_score,
                "provider": provider,
                "model": model,
                "message": message,
                "evidence": list(evidence),
            }

    def record_detection(
        self,
        *,
        status: str,
        contains_ai: bool | None,
        ai_score: float | None,
        predicted_model: str | None,
        predicted_model_score: float | None,
        provider: str,
        model: str,
        message: str | None,
        evidence: list[str],
        release_id: str | None = None,
        conversation_id: str | None = None,
        track_index: int | None = None,
    ) -> None:
        if self.bucket != "audio":
            raise ValidationFailed("Only audio files are checked for AI.", code="not_audio")
        if status not in DETECTION_STATUSES:
            raise ValidationFailed(f"Unknown detection status {status!r}.", code="invalid_status")
        for score in (ai_score, predicted_model_score):
            if score is not None and not 0.0 <= score <= 1.0:
                raise ValidationFailed("Scores are between 0 and 1.", code="invalid_score")
        self._ai_detected(
            status=status,
            contains_ai=contains_ai,
            ai_score=ai_score,
            predicted_model=predicted_model,
            predicted_model_score=predicted_model_score,
            provider=provider,
            model=model,
            message=message,
            evidence=list(evidence),
            release_id=release_id,
            conversation_id=conversation_id,
            track_index=track_index,
            # A detector's verdict and a file too large for it are facts about the file;
            # a skipped run or a failed download is not, so the next call tries again.
            cacheable=status in ("ok", "too_large"),
        )


@dataclass(frozen=True)
class ChunkReceipt:
    index: int
    size: int
    sha256: str


SessionState = Literal["open", "completed", "rejected"]


class UploadSession(Aggregate):
    """A chunked upload of one file by one account."""

    TOPIC = "backline.UploadSession"
    id: UUID  # given by the caller (the upload token embeds it)

    class Created(Aggregate.Created):
        TOPIC = "backline.UploadSession.Created"

    class Event(Aggregate.Event):
        pass

    class Prepared(Created):
        TOPIC = "backline.UploadSession.Prepared"
        owner_id: UUID
        kind: str
        file_name: str
        file_size: int
        file_type: str
        chunk_bytes: int
        token_hash: str
        expires_at: datetime
        provenance: str

    @event(Prepared)
    def __init__(
        self,
        owner_id: UUID,
        kind: str,
        file_name: str,
        file_size: int,
        file_type: str,
        chunk_bytes: int,
        token_hash: str,
        expires_at: datetime,
        provenance: str,
    ) -> None:
        self.owner_id = owner_id
        self.kind = kind
        self.file_name = file_name
        self.file_size = file_size
        self.file_type = file_type
        self.chunk_bytes = chunk_bytes
        self.token_hash = token_hash
        self.expires_at = expires_at
        self.provenance = provenance
        self.chunks: dict[int, ChunkReceipt] = {}
        self.state: SessionState = "open"
        self.file_url: str | None = None
        self.rejection: tuple[str, str] | None = None

    @property
    def total_chunks(self) -> int:
        return max(1, -(-self.file_size // self.chunk_bytes))

    def expected_size(self, index: int) -> int:
        if index < self.total_chunks - 1:
            return self.chunk_bytes
        return self.file_size - self.chunk_bytes * (self.total_chunks - 1)

    def check_chunk(self, index: int, upload_type: str | None) -> None:
        """Refuse a chunk before its bytes are read: index range, type, session state."""
        if upload_type is not None and upload_type != self.kind:
            raise ValidationFailed(
                f"This session uploads {self.kind!r}, not {upload_type!r}.",
                code="upload_type_mismatch",
                field="type",
            )
        if index < 0 or index >= self.total_chunks:
            raise ValidationFailed(
                f"chunkIndex must be between 0 and {self.total_chunks - 1}.",
                code="invalid_chunk_index",
                field="chunkIndex",
                totalChunks=self.total_chunks,
            )
        self.ensure_open()

    def ensure_open(self) -> None:
        if self.state == "completed":
            raise Conflict(
                "This upload session is already completed.",
                code="session_completed",
                fileUrl=self.file_url,
            )
        if self.state == "rejected":
            code, message = self.rejection or ("rejected", "rejected")
            raise Conflict(
                f"This upload session was rejected: {message}",
                code="session_rejected",
                reason=code,
            )

    class ChunkReceived(Event):
        TOPIC = "backline.UploadSession.ChunkReceived"
        index: int
        size: int
        sha256: str

    @event(ChunkReceived)
    def _chunk_received(self, index: int, size: int, sha256: str) -> None:
        self.chunks[index] = ChunkReceipt(index, size, sha256)

    def receive_chunk(self, index: int, size: int, sha256: str) -> bool:
        """Record a chunk; ``False`` when the same bytes were already stored (no-op)."""
        self.check_chunk(index, None)
        expected = self.expected_size(index)
        if size != expected:
            raise ValidationFailed(
                f"Chunk {index} must be exactly {expected} bytes (got {size}); every chunk "
                f"but the last is {self.chunk_bytes} bytes.",
                code="invalid_chunk_size",
                field="chunk",
                expectedBytes=expected,
            )
        existing = self.chunks.get(index)
        if existing is not None:
            if existing.sha256 == sha256:
                return False
            raise Conflict(
                f"Chunk {index} was already received with different bytes.",
                code="chunk_conflict",
                chunkIndex=index,
            )
        self._chunk_received(index=index, size=size, sha256=sha256)
        return True

    def missing_chunks(self) -> list[int]:
        return [i for i in range(self.total_chunks) if i not in self.chunks]

    def ensure_complete(self) -> None:
        missing = self.missing_chunks()
        if missing:
            shown = missing[:100]
            raise ValidationFailed(
                f"{len(missing)} chunk(s) missing: {', '.join(map(str, shown))}"
                + ("…" if len(missing) > len(shown) else ""),
                code="missing_chunks",
                missingChunks=shown,
                missingCount=len(missing),
            )

    class Completed(Event):
        TOPIC = "backline.UploadSession.Completed"
        file_url: str
        file_id: UUID
        sha256: str

    @event(Completed)
    def _completed(self, file_url: str, file_id: UUID, sha256: str) -> None:
        self.state = "completed"
        self.file_url = file_url

    def complete(self, file_url: str, file_id: UUID, sha256: str) -> None:
        self.ensure_open()
        self.ensure_complete()
        self._completed(file_url=file_url, file_id=file_id, sha256=sha256)

    class Rejected(Event):
        TOPIC = "backline.UploadSession.Rejected"
        reason_code: str
        message: str

    @event(Rejected)
    def _rejected(self, reason_code: str, message: str) -> None:
        self.state = "rejected"
        self.rejection = (reason_code, message)

    def reject(self, reason_code: str, message: str) -> None:
        self.ensure_open()
        self._rejected(reason_code=reason_code, message=message)

    def ensure_owner(self, account_id: UUID) -> None:
        if account_id != self.owner_id:
            raise NotFound("Upload session not found.", code="session_not_found")
