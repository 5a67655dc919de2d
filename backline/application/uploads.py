"""Upload use cases: publish a file, chunked upload sessions, AI detection, cover art.

Bytes and records, and the order that keeps them consistent:

1. Bytes arrive in a private staging file (streamed by the HTTP edge, never held whole
   in memory), are validated by content, and are committed to the file store under
   their SHA-256 (``blobs/ab/abcdef…``): fsync, then an atomic rename.
2. Only then is the :class:`~backline.domain.uploads.StoredFile` event saved, which
   names the file (``/api/files/{bucket}/{owner}/{name}``) and points at the blob.

A crash between 1 and 2 leaves an unreferenced blob (harmless; the retry reuses it); a
reader can only reach a file through its record, so a half-written file is never
served. Chunks follow the same rule: a chunk's bytes are committed (content-addressed
by session, index and digest) before its receipt event.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.domain import Aggregate

from backline.application.file_ports import (
    AiDetector,
    CoverArtGenerator,
    Detection,
    FileStore,
    GeneratedImage,
    ImageGenerationFailed,
    Inspection,
    MediaInspector,
)
from backline.application.ports import Clock, SystemClock
from backline.application.store import CommandConflict, EventStore, retrying
from backline.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from backline.domain.uploads import (
    BUCKET_BY_KIND,
    FileRef,
    InvalidUploadToken,
    PayloadTooLarge,
    StoredFile,
    UploadSession,
    parse_file_url,
    parse_kind,
    safe_file_name,
    stored_file_id,
    with_extension,
    with_suffix,
)

log = structlog.get_logger(__name__)

TOKEN_PREFIX = "blup_"  # noqa: S105 - a prefix, not a secret
UPLOAD_HEADER = "x-mcp-upload-token"
COPY_BLOCK = 1 << 20
MAX_PROMPT = 1500
# Every chunk receipt is an event on the session, loaded per request: bound their number.
MAX_CHUNKS = 1024


class GenerationFailed(DomainError):
    code = "generation_failed"


@dataclass(frozen=True)
class UploadPolicy:
    max_audio_bytes: int = 2 * 1024**3
    max_cover_bytes: int = 50 * 1024**2
    max_direct_bytes: int = 512 * 1024**2  # one-request multipart upload
    max_inline_bytes: int = 8 * 1024**2  # base64 in a tool call
    chunk_bytes: int = 8 * 1024**2
    min_chunk_bytes: int = 64 * 1024
    max_chunk_bytes: int = 32 * 1024**2
    session_ttl: timedelta = timedelta(hours=24)
    cover_art_rate_limit: str = "5 per 120 seconds"  # the cover_art_generate budget

    def max_bytes(self, kind: str) -> int:
        return self.max_audio_bytes if kind == "audio" else self.max_cover_bytes


@dataclass(frozen=True)
class PublishedFile:
    file_url: str
    file_name: str
    user_id: UUID
    bucket: str
    key: str
    size: int
    sha256: str
    content_type: str
    media: dict[str, Any]
    warnings: list[str]
    distribution_ready: bool
    position: int = 0

    @staticmethod
    def of(f: StoredFile, position: int = 0) -> PublishedFile:
        return PublishedFile(
            file_url=f.ref.url,
            file_name=f.name,
            user_id=f.owner_id,
            bucket=f.bucket,
            key=f.ref.key,
            size=f.size,
            sha256=f.sha256,
            content_type=f.content_type,
            media=f.media,
            warnings=list(f.warnings),
            distribution_ready=f.distribution_ready,
            position=position,
        )


@dataclass(frozen=True)
class PreparedUpload:
    session_id: UUID
    upload_token: str
    chunk_bytes: int
    total_chunks: int
    expires_at_iso: str


@dataclass(frozen=True)
class ChunkAccepted:
    session_id: UUID
    index: int
    size: int
    sha256: str
    duplicate: bool
    received: int
    total: int


@dataclass(frozen=True)
class DetectionResult:
    detection: Detection
    cached: bool
    file_url: str


@dataclass(frozen=True)
class DetectionRecord:
    """What the releases/billing side reads about one audio file."""

    file_url: str
    owner_id: UUID
    status: str
    contains_ai: bool | None
    ai_score: float | None
    predicted_model: str | None
    predicted_model_score: float | None
    provider: str
    model: str


@dataclass(frozen=True)
class CoverArtResult:
    published: PublishedFile
    image: GeneratedImage
    edited: bool
    data: bytes = field(repr=False, default=b"")


def blob_key(sha256: str) -> str:
    return f"blobs/{sha256[:2]}/{sha256}"


def chunk_key(session_id: UUID, index: int, sha256: str) -> str:
    return f"sessions/{session_id.hex}/{index:06d}-{sha256}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(COPY_BLOCK):
            h.update(block)
    return h.hexdigest()


class UploadService:
    def __init__(
        self,
        store: EventStore,
        files: FileStore,
        inspector: MediaInspector,
        detector: AiDetector,
        generator: CoverArtGenerator,
        clock: Clock | None = None,
        policy: UploadPolicy | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.inspector = inspector
        self.detector = detector
        self.generator = generator
        self.clock = clock or SystemClock()
        self.policy = policy or UploadPolicy()
        self._locks: dict[UUID, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # -- publishing ---------------------------------------------------------------------

    def check_size(self, kind: str, size: int) -> None:
        limit = self.policy.max_bytes(kind)
        if size > limit:
            raise PayloadTooLarge(
                f"The file is {size} bytes; {kind} files may be at most {limit} bytes.",
                maxBytes=limit,
            )

    def publish_staged(
        self,
        owner_id: UUID,
        kind: str,
        staged: Path,
        original_name: str | None,
        declared_type: str | None = None,
        *,
        source: str = "direct",
        sha256: str | None = None,
        session: UploadSession | None = None,
        extra_media: dict[str, Any] | None = None,
    ) -> PublishedFile:
        """Validate a staged file by content, commit its bytes, then record it.

        The staged file (and any processed replacement) is consumed. With ``session``
        the session's ``Completed`` event is saved in the same transaction as the file.
        """
        kind = parse_kind(kind)
        replacement: Path | None = None
        try:
            size = staged.stat().st_size
            self.check_size(kind, size)
            inspection = self.inspector.inspect(kind, staged, declared_type)
            replacement = inspection.replacement
            final = replacement or staged
            digest = file_sha256(final) if (replacement or sha256 is None) else sha256
            assert digest is not None
            size = final.stat().st_size
            self.files.commit(final, blob_key(digest), replace=False)
        finally:
            staged.unlink(missing_ok=True)
            if replacement is not None:
                replacement.unlink(missing_ok=True)
        media = dict(inspection.media)
        if extra_media:
            media.update(extra_media)
        return self._record(
            owner_id, kind, original_name, inspection, digest, size, media, source, session
        )

    def _record(
        self,
        owner_id: UUID,
        kind: str,
        original_name: str | None,
        inspection: Inspection,
        digest: str,
        size: int,
        media: dict[str, Any],
        source: str,
        session: UploadSession | None,
    ) -> PublishedFile:
        bucket = BUCKET_BY_KIND[kind]
        base_name = with_extension(
            safe_file_name(original_name, default=digest[:12]), inspection.extension
        )
        session_id = session.id if session is not None else None

        def attempt() -> PublishedFile:
            sess = None
            if session_id is not None:
                sess = self.store.get(session_id, UploadSession, what="upload session")
                if sess.state == "completed" and sess.file_url:
                    return self.published(parse_file_url(sess.file_url))
            name = base_name
            for _ in range(20):
                existing = self.store.find(stored_file_id(bucket, owner_id, name), StoredFile)
                if existing is None:
                    break
                if existing.sha256 == digest and sess is None:
                    return PublishedFile.of(existing)  # the same bytes again: idempotent
                name = with_suffix(base_name, secrets.token_hex(3))
            stored = StoredFile(
                owner_id=owner_id,
                bucket=bucket,
                name=name,
                size=size,
                sha256=digest,
                content_type=inspection.content_type,
                media=media,
                warnings=list(inspection.warnings),
                distribution_ready=inspection.distribution_ready,
                source=source,
                session_id=session_id,
                original_name=(original_name or "")[:500],
            )
            to_save: list[Aggregate] = [stored]
            if sess is not None:
                sess.complete(stored.ref.url, stored.id, digest)
                to_save.append(sess)
            position = self.store.save_all(*to_save)
            log.info(
                "file_published",
                bucket=bucket,
                owner=str(owner_id),
                size=size,
                source=source,
                format=inspection.format,
            )
            return PublishedFile.of(stored, position)

        return retrying(attempt, attempts=10)

    def published(self, ref: FileRef, owner_id: UUID | None = None) -> PublishedFile:
        return PublishedFile.of(self.get_file(ref, owner_id))

    def get_file(self, ref: FileRef, owner_id: UUID | None = None) -> StoredFile:
        """The file record, for its owner only (everyone else: ``NotFound``)."""
        f = self.store.find(ref.id, StoredFile)
        if f is None or (owner_id is not None and f.owner_id != owner_id):
            raise NotFound("File not found.", code="file_not_found")
        return f

    def open_blob(self, f: StoredFile) -> Path | None:
        return self.files.local_path(blob_key(f.sha256))

    def staging_path(self, hint: str = "") -> Path:
        return self.files.new_staging_path(hint)

    def upload_inline(
        self,
        owner_id: UUID,
        kind: str,
        data_b64: str,
        file_name: str | None,
        file_type: str | None,
    ) -> PublishedFile:
        """``upload_file``: base64 bytes in the tool call (small files only)."""
        kind = parse_kind(kind)
        data = decode_base64(data_b64, what="fileBase64", limit=self.policy.max_inline_bytes)
        staged = self.files.new_staging_path("inline")
        with open(staged, "wb") as fh:
            fh.write(data)
        return self.publish_staged(owner_id, kind, staged, file_name, file_type, source="inline")

    # -- chunked sessions ---------------------------------------------------------------

    def prepare(
        self,
        owner_id: UUID,
        kind: str,
        file_name: str,
        file_size: int,
        file_type: str | None = None,
        *,
        chunk_bytes: int | None = None,
        provenance: str = "MCP",
    ) -> PreparedUpload:
        kind = parse_kind(kind)
        if not isinstance(file_size, int) or isinstance(file_size, bool) or file_size <= 0:
            raise ValidationFailed(
                "fileSize must be a positive number of bytes.", code="invalid_file_size"
            )
        self.check_size(kind, file_size)
        size = chunk_bytes or self.policy.chunk_bytes
        if not self.policy.min_chunk_bytes <= size <= self.policy.max_chunk_bytes:
            raise ValidationFailed(
                f"chunkBytes must be between {self.policy.min_chunk_bytes} and "
                f"{self.policy.max_chunk_bytes}.",
                code="invalid_chunk_size",
            )
        if -(-file_size // size) > MAX_CHUNKS:
            least = -(-file_size // MAX_CHUNKS)
            raise ValidationFailed(
                f"A session has at most {MAX_CHUNKS} chunks; use chunkBytes of at least {least}.",
                code="invalid_chunk_size",
                minChunkBytes=least,
            )
        name = safe_file_name(file_name)
        session_id = uuid.uuid4()
        # The token names its session, so a request is authorised before its body is read.
        token = f"{TOKEN_PREFIX}{session_id.hex}_{secrets.token_urlsafe(32)}"
        session = UploadSession(
            owner_id=owner_id,
            kind=kind,
            file_name=name,
            file_size=file_size,
            file_type=(file_type or "")[:100],
            chunk_bytes=size,
            token_hash=hash_token(token),
            expires_at=self.clock.now() + self.policy.session_ttl,
            provenance=provenance,
            id=session_id,  # type: ignore[call-arg]
        )
        self.store.save_all(session)
        log.info("upload_session_prepared", session=str(session.id), kind=kind, size=file_size)
        return PreparedUpload(
            session_id=session.id,
            upload_token=token,
            chunk_bytes=size,
            total_chunks=session.total_chunks,
            expires_at_iso=session.expires_at.isoformat().replace("+00:00", "Z"),
        )

    def authorize(
        self, session_id: str | None, token: str | None, account_id: UUID | None
    ) -> UploadSession:
        """The session a request may act on: by its upload token, or by its owner.

        A token is checked first and alone: it must be this session's, unexpired. A wrong,
        expired or foreign token is ``invalid_upload_token`` (401) whether or not the
        session exists. Without a token, the signed-in owner may act; anyone else gets 404.
        """
        if token:
            sid = session_of_token(token)
            if sid is None:
                raise InvalidUploadToken("The upload token is invalid.")
            if session_id and _uuid_or_none(session_id) != sid:
                raise InvalidUploadToken("The upload token belongs to another upload session.")
            session = self.store.find(sid, UploadSession)
            if session is None or not hmac.compare_digest(session.token_hash, hash_token(token)):
                raise InvalidUploadToken("The upload token is invalid.")
            if self.clock.now() >= session.expires_at:
                raise InvalidUploadToken(
                    "The upload token has expired; prepare a new upload.",
                    code="upload_token_expired",
                )
            if account_id is not None and account_id != session.owner_id:
                raise NotFound("Upload session not found.", code="session_not_found")
            return session
        if account_id is None:
            raise InvalidUploadToken(
                f"Send the {UPLOAD_HEADER} header (or a bearer token).", code="unauthorized"
            )
        sid = _uuid_or_none(session_id or "")
        if sid is None:
            raise ValidationFailed("sessionId is required.", code="invalid_session_id")
        session = self.store.find(sid, UploadSession)
        if session is None:
            raise NotFound("Upload session not found.", code="session_not_found")
        session.ensure_owner(account_id)
        if self.clock.now() >= session.expires_at and session.state == "open":
            raise Conflict(
                "This upload session has expired; prepare a new upload.",
                code="upload_session_expired",
            )
        return session

    def accept_chunk(
        self, session_id: UUID, index: int, staged: Path, size: int, sha256: str
    ) -> ChunkAccepted:
        """Record a streamed chunk (bytes first, then the receipt). Consumes ``staged``."""
        try:
            session = self.store.get(session_id, UploadSession, what="upload session")
            expected = session.expected_size(index) if 0 <= index < session.total_chunks else 0
            if size > expected:
                raise PayloadTooLarge(
                    f"Chunk {index} is larger than {expected} bytes.", maxBytes=expected
                )
            existing = session.chunks.get(index)
            session.receive_chunk(index, size, sha256)  # validates on a copy of the state
            key = chunk_key(session_id, index, sha256)
            if existing is None or not self.files.exists(key):
                self.files.commit(staged, key)
        finally:
            staged.unlink(missing_ok=True)

        def attempt() -> ChunkAccepted:
            s = self.store.get(session_id, UploadSession, what="upload session")
            new = s.receive_chunk(index, size, sha256)
            if new:
                self.store.save_all(s)
            return ChunkAccepted(
                session_id=session_id,
                index=index,
                size=size,
                sha256=sha256,
                duplicate=not new,
                received=len(s.chunks),
                total=s.total_chunks,
            )

        return retrying(attempt, attempts=50)

    def _lock(self, session_id: UUID) -> threading.Lock:
        with self._locks_guard:
            lock = self._locks.get(session_id)
            if lock is None:
                lock = self._locks[session_id] = threading.Lock()
            return lock

    def complete(
        self,
        session: UploadSession,
        *,
        file_name: str | None = None,
        file_type: str | None = None,
        upload_type: str | None = None,
    ) -> PublishedFile:
        """Assemble the chunks in order, verify every digest and the size, validate, publish.

        Exactly one completion wins: concurrent calls in one process wait on a lock; across
        processes the session's version decides and the loser answers with the winner's
        file. Completing a completed session returns its file (safe to retry).
        """
        if upload_type is not None and upload_type != session.kind:
            parse_kind(upload_type)
            raise ValidationFailed(
                f"This session uploads {session.kind!r}, not {upload_type!r}.",
                code="upload_type_mismatch",
                field="type",
            )
        with self._lock(session.id):
            s = self.store.get(session.id, UploadSession, what="upload session")
            if s.state == "completed" and s.file_url:
                return self.published(parse_file_url(s.file_url))
            s.ensure_open()
            s.ensure_complete()
            staged, digest = self._assemble(s)
            name = file_name or s.file_name
            try:
                published = self.publish_staged(
                    s.owner_id,
                    s.kind,
                    staged,
                    name,
                    file_type or s.file_type or None,
                    source="chunked",
                    sha256=digest,
                    session=s,
                )
            except ValidationFailed as e:
                self._reject(s.id, e.code, e.message)
                raise
            except PayloadTooLarge as e:
                self._reject(s.id, e.code, e.message)
                raise
            self.files.delete_prefix(f"sessions/{s.id.hex}")
        with self._locks_guard:
            self._locks.pop(session.id, None)
        return published

    def _reject(self, session_id: UUID, code: str, message: str) -> None:
        def attempt() -> None:
            s = self.store.get(session_id, UploadSession, what="upload session")
            if s.state == "open":
                s.reject(code, message)
                self.store.save_all(s)

        with contextlib.suppress(CommandConflict):
            retrying(attempt)
        self.files.delete_prefix(f"sessions/{session_id.hex}")

    def _assemble(self, s: UploadSession) -> tuple[Path, str]:
        staged = self.files.new_staging_path("assembled")
        total = hashlib.sha256()
        written = 0
        try:
            with open(staged, "wb") as out:
                for index in range(s.total_chunks):
                    receipt = s.chunks[index]
                    key = chunk_key(s.id, index, receipt.sha256)
                    if not self.files.exists(key):
                        raise ValidationFailed(
                            f"Chunk {index} is missing from storage; send it again.",
                            code="missing_chunks",
                            missingChunks=[index],
                            missingCount=1,
                        )
                    h = hashlib.sha256()
                    with self.files.open_read(key) as src:
                        while block := src.read(COPY_BLOCK):
                            h.update(block)
                            total.update(block)
                            out.write(block)
                            written += len(block)
                    if h.hexdigest() != receipt.sha256:
                        self.files.delete(key)
                        raise ValidationFailed(
                            f"Chunk {index} failed verification; send it again.",
                            code="missing_chunks",
                            missingChunks=[index],
                            missingCount=1,
                        )
            if written != s.file_size:
                raise ValidationFailed(
                    f"Assembled {written} bytes but fileSize was {s.file_size}.",
                    code="size_mismatch",
                )
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        return staged, total.hexdigest()

    def sweep_sessions(self) -> int:
        """Delete stored chunks of sessions that are finished, expired or unknown."""
        removed = 0
        now = self.clock.now()
        for name in self.files.list_children("sessions"):
            sid = _uuid_or_none(name)
            s = self.store.find(sid, UploadSession) if sid is not None else None
            if s is None or s.state != "open" or now >= s.expires_at:
                self.files.delete_prefix(f"sessions/{name}")
                removed += 1
        return removed

    def session_status(self, session: UploadSession) -> dict[str, Any]:
        return {
            "sessionId": str(session.id),
            "state": session.state,
            "fileSize": session.file_size,
            "chunkBytes": session.chunk_bytes,
            "totalChunks": session.total_chunks,
            "receivedChunks": sorted(session.chunks),
            "missingChunks": session.missing_chunks()[:1000],
            "fileUrl": session.file_url,
        }

    # -- AI detection -------------------------------------------------------------------

    def detect(
        self,
        account_id: UUID,
        file_url: str,
        *,
        file_name: str | None = None,
        release_id: str | None = None,
        conversation_id: str | None = None,
        track_index: int | None = None,
    ) -> DetectionResult:
        ref = parse_file_url(file_url)
        if ref.bucket != "audio":
            raise ValidationFailed(
                "fileUrl must point to the audio bucket.", code="not_audio", field="fileUrl"
            )
        if track_index is not None and track_index < 0:
            raise ValidationFailed("trackIndex must be 0 or more.", code="invalid_track_index")
        f = self.get_file(ref, account_id)
        linkage = {
            "release_id": release_id,
            "conversation_id": conversation_id,
            "track_index": track_index,
        }
        if f.detection is not None:
            d = f.detection
            cached = Detection(
                status=d["status"],
                contains_ai=d["contains_ai"],
                ai_score=d["ai_score"],
                predicted_model=d["predicted_model"],
                predicted_model_score=d["predicted_model_score"],
                provider=d["provider"],
                model=d["model"],
                message=d["message"],
                evidence=tuple(d.get("evidence") or ()),
            )
            if release_id or conversation_id or track_index is not None:
                self._record_detection(f.id, cached, linkage)  # link it to the draft
            return DetectionResult(cached, True, ref.url)
        if f.size > self.detector.max_bytes:
            detection = Detection(
                status="too_large",
                contains_ai=None,
                ai_score=None,
                predicted_model=None,
                predicted_model_score=None,
                provider=self.detector.provider,
                model="",
                message=f"The file is {f.size} bytes; the detector accepts at most "
                f"{self.detector.max_bytes}.",
            )
        else:
            path = self.open_blob(f)
            if path is None or not path.exists():
                detection = Detection(
                    status="download_failed",
                    contains_ai=None,
                    ai_score=None,
                    predicted_model=None,
                    predicted_model_score=None,
                    provider=self.detector.provider,
                    model="",
                    message="The file's bytes could not be read from storage.",
                )
            else:
                detection = self.detector.detect(
                    path, content_type=f.content_type, file_name=file_name or f.name
                )
        self._record_detection(f.id, detection, linkage)
        return DetectionResult(detection, False, ref.url)

    def _record_detection(self, file_id: UUID, d: Detection, linkage: dict[str, Any]) -> None:
        def attempt() -> None:
            f = self.store.get(file_id, StoredFile, what="file")
            f.record_detection(
                status=d.status,
                contains_ai=d.contains_ai,
                ai_score=d.ai_score,
                predicted_model=d.predicted_model,
                predicted_model_score=d.predicted_model_score,
                provider=d.provider,
                model=d.model,
                message=d.message,
                evidence=list(d.evidence),
                **linkage,
            )
            self.store.save_all(f)

        retrying(attempt)

    def detection_for(self, file_url: str, owner_id: UUID | None = None) -> DetectionRecord | None:
        """The cached detection of an audio file (None when never detected).

        For the releases use cases (draft track writeback, billing at 1 or 2 credits).
        """
        try:
            ref = parse_file_url(file_url)
            f = self.get_file(ref, owner_id)
        except DomainError:
            return None
        d = f.detection
        if d is None:
            return None
        return DetectionRecord(
            file_url=ref.url,
            owner_id=f.owner_id,
            status=d["status"],
            contains_ai=d["contains_ai"],
            ai_score=d["ai_score"],
            predicted_model=d["predicted_model"],
            predicted_model_score=d["predicted_model_score"],
            provider=d["provider"],
            model=d["model"],
        )

    # -- cover art ----------------------------------------------------------------------

    def generate_cover_art(
        self,
        account_id: UUID,
        prompt: str,
        *,
        base_file_url: str | None = None,
        base_image_b64: str | None = None,
        base_image_mime: str | None = None,
        file_name: str | None = None,
        release_id: str | None = None,
        conversation_id: str | None = None,
        check_budget: Callable[[], None] | None = None,
    ) -> CoverArtResult:
        text = (prompt or "").strip()
        if not 1 <= len(text) <= MAX_PROMPT:
            raise ValidationFailed(
                f"prompt must be 1 to {MAX_PROMPT} characters.",
                code="invalid_prompt",
                field="prompt",
            )
        if base_file_url and base_image_b64:
            raise ValidationFailed(
                "Pass baseFileUrl or baseImageBase64, not both.", code="ambiguous_base_image"
            )
        base: bytes | None = None
        mime = base_image_mime
        if base_file_url:
            ref = parse_file_url(base_file_url, what="baseFileUrl")
            if ref.bucket != "cover-art":
                raise ValidationFailed(
                    "baseFileUrl must point to your cover-art bucket.",
                    code="invalid_base_image",
                    field="baseFileUrl",
                )
            f = self.get_file(ref, account_id)
            path = self.open_blob(f)
            if path is None or not path.exists():
                raise NotFound("The base image's bytes are missing.", code="file_not_found")
            base = path.read_bytes()  # bounded by max_cover_bytes at upload
            mime = f.content_type
        elif base_image_b64:
            raw = base_image_b64.strip()
            if raw.startswith("data:"):
                header, _, raw = raw.partition(",")
                if not mime and ";" in header:
                    mime = header[5:].split(";", 1)[0] or None
            base = decode_base64(raw, what="baseImageBase64", limit=self.policy.max_cover_bytes)
        if check_budget is not None:
            check_budget()
        try:
            image = self.generator.generate(text, base, mime)
        except ImageGenerationFailed as e:
            raise GenerationFailed(str(e)) from None
        edited = base is not None
        staged = self.files.new_staging_path("generated")
        staged.write_bytes(image.data)
        name = safe_file_name(file_name) if file_name else f"{uuid.uuid4()}.png"
        published = self.publish_staged(
            account_id,
            "coverArt",
            staged,
            name,
            image.mime_type,
            source="generated",
            extra_media={
                "generation": {
                    "prompt": text,
                    "provider": image.provider,
                    "model": image.model,
                    "modelVariant": image.model_variant,
                    "edited": edited,
                    "baseFileUrl": base_file_url,
                    "releaseId": release_id,
                    "conversationId": conversation_id,
                }
            },
        )
        return CoverArtResult(published=published, image=image, edited=edited)

    def read_file_bytes(self, published: PublishedFile) -> bytes:
        with self.files.open_read(blob_key(published.sha256)) as fh:
            return fh.read()


def session_of_token(token: str) -> UUID | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    body = token[len(TOKEN_PREFIX) :]
    sid, sep, secret = body.partition("_")
    if not sep or not secret:
        return None
    return _uuid_or_none(sid)


def _uuid_or_none(value: str) -> UUID | None:
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


def decode_base64(value: str, *, what: str, limit: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{what} is required.", code="invalid_base64", field=what)
    text = value.strip()
    if text.startswith("data:"):
        text = text.partition(",")[2]
    if len(text) > (limit * 4) // 3 + 8:
        raise PayloadTooLarge(f"{what} decodes to more than {limit} bytes.", maxBytes=limit)
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            f"{what} is not valid base64.", code="invalid_base64", field=what
        ) from None
    if len(data) > limit:
        raise PayloadTooLarge(f"{what} decodes to more than {limit} bytes.", maxBytes=limit)
    return data


__all__ = ["UploadService"]
