"""Upload routes (seed 000/001): one-request upload, chunked sessions, file serving.

* ``POST /api/mcp/upload`` — bearer; multipart ``file`` + ``type`` (``coverArt``/``audio``),
  streamed to disk as it arrives.
* ``POST /api/mcp/upload/chunk`` — ``x-mcp-upload-token`` (or the owner's bearer token);
  raw bytes (``x-session-id``, ``x-chunk-index``, ``x-upload-type``), multipart (``chunk``,
  ``chunkIndex``, ``sessionId``, ``type``) or JSON (``chunkBase64`` …). Raw bodies are
  authorised and range-checked from the headers before a byte is read.
* ``POST /api/mcp/upload/complete`` — same auth; ``sessionId``, ``fileName``,
  ``fileType``, ``type``.
* ``GET /api/mcp/upload/status?sessionId=`` — which chunks arrived (to resume).
* ``GET`` / ``HEAD /api/files/{bucket}/{user_id}/{name}`` — the owner only (others: 404), or anyone
  holding a signed, expiring URL for that path (``?expires=&signature=``, api/signing.py), with
  ``Content-Type``, ``Content-Length``, ``ETag`` (the SHA-256), ``If-None-Match`` and
  single ``Range`` requests, streamed from disk.

Request bodies are never held whole in memory: the app-wide 1 MiB body limit stays, and
these routes lift it (``request_max_body_size=None``) to enforce their own limits while
streaming (``413`` as soon as a body passes its limit).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import msgspec
from litestar import MediaType, Request, Response, Router, get, head, post
from litestar.params import FromPath
from litestar.response import Stream
from multipart import MultipartSegment, ParserError, PushMultipartParser, parse_options_header

from backline.api.auth import Principal, api_config, resolve_principal, services
from backline.api.errors import render
from backline.api.forms import in_thread
from backline.api.signing import verify_signed_path
from backline.application.uploads import UPLOAD_HEADER, PublishedFile, decode_base64
from backline.domain.errors import DomainError, NotFound, Unauthorized, ValidationFailed
from backline.domain.uploads import (
    InvalidUploadToken,
    PayloadTooLarge,
    parse_file_url,
    parse_kind,
)

FLUSH_BYTES = 512 * 1024
READ_BYTES = 256 * 1024
MULTIPART_OVERHEAD = 64 * 1024
MAX_FIELD_BYTES = 4096


class UploadResult(msgspec.Struct, kw_only=True):
    """Seed 001 shape (``success``, ``fileUrl``, ``fileName``, ``userId``) plus what was found."""

    success: bool
    fileUrl: str
    fileName: str
    userId: str
    bucket: str
    key: str
    fileSize: int
    contentType: str
    sha256: str
    distributionReady: bool
    warnings: list[str]
    media: dict[str, Any]


def upload_result(p: PublishedFile) -> UploadResult:
    return UploadResult(
        success=True,
        fileUrl=p.file_url,
        fileName=p.file_name,
        userId=str(p.user_id),
        bucket=p.bucket,
        key=p.key,
        fileSize=p.size,
        contentType=p.content_type,
        sha256=p.sha256,
        distributionReady=p.distribution_ready,
        warnings=list(p.warnings),
        media=p.media,
    )


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers or {},
    )


class _Sink:
    """Writes a streamed body to a staging file in 1 MiB steps (off the loop), hashing."""

    def __init__(self, path: Path, limit: int, what: str) -> None:
        self.path = path
        self.limit = limit
        self.what = what
        self.size = 0
        self._hash = hashlib.sha256()
        self._buf = bytearray()
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(
                f"The {self.what} is larger than {self.limit} bytes.", maxBytes=self.limit
            )
        self._buf += data
        if len(self._buf) >= FLUSH_BYTES:
            await self._flush()

    async def _flush(self) -> None:
        if self._buf:
            data, self._buf = self._buf, bytearray()
            await in_thread(self._write, data)

    def _write(self, data: bytearray) -> None:
        self._fh.write(data)
        self._hash.update(data)

    async def close(self) -> str:
        await self._flush()
        self._fh.close()
        return self._hash.hexdigest()

    def abort(self) -> None:
        self._fh.close()
        self.path.unlink(missing_ok=True)


async def _principal(request: Request[Any, Any, Any]) -> Principal | None:
    principal = await in_thread(resolve_principal, request)
    # /api/mcp/* is CSRF-exempt, so a cookie alone must not authorise a write there.
    if principal is not None and principal.via == "session" and request.method != "GET":
        return None
    return principal


async def _bearer(request: Request[Any, Any, Any]) -> Principal:
    principal = await _principal(request)
    if principal is None:
        from backline.api.auth import challenge

        exc = Unauthorized("Authorization: Bearer required.", code="unauthorized")
        exc.headers = {"WWW-Authenticate": challenge(api_config(request))}  # type: ignore[attr-defined]
        raise exc
    return principal


async def _upload_auth(
    request: Request[Any, Any, Any], session_id: str | None
) -> tuple[Any, UUID | None]:
    """(session, account) for a chunk/complete request: upload token or owner's bearer."""
    token = request.headers.get(UPLOAD_HEADER)
    account: UUID | None = None
    if not token:
        principal = await _principal(request)
        account = principal.account_id if principal is not None else None
    uploads = services(request).uploads
    session = await in_thread(uploads.authorize, session_id, token, account)
    return session, account


def _content_type(request: Request[Any, Any, Any]) -> tuple[str, dict[str, str]]:
    raw = request.headers.get("content-type", "")
    value, options = parse_options_header(raw)
    return value.lower(), options


def _int_field(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValidationFailed(f"{name} must be an integer.", code="invalid_field", field=name)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,12}", value.strip()):
        return int(value.strip())
    raise ValidationFailed(f"{name} must be an integer.", code="invalid_field", field=name)


async def _stream_multipart(
    request: Request[Any, Any, Any],
    boundary: str,
    file_field: str,
    open_sink: Callable[[MultipartSegment], _Sink],
) -> tuple[dict[str, str], _Sink | None]:
    """Parse a multipart body as it streams: small fields in memory, the file to a sink."""
    fields: dict[str, str] = {}
    state: dict[str, Any] = {"sink": None, "current": None, "buf": bytearray()}

    async def handle(parser: PushMultipartParser, piece: bytes) -> None:
        for event in parser.parse(piece):
            current = state["current"]
            if isinstance(event, MultipartSegment):
                state["current"] = event.name
                state["buf"] = bytearray()
                if event.name == file_field:
                    if state["sink"] is not None:
                        raise ValidationFailed(
                            f"Send one {file_field!r} part.", code="invalid_multipart"
                        )
                    state["sink"] = open_sink(event)
            elif event is None:
                if current is not None and current != file_field:
                    fields[current] = state["buf"].decode("utf-8", "replace")
                state["current"] = None
            elif current == file_field and state["sink"] is not None:
                await state["sink"].write(event)
            elif current is not None:
                state["buf"] += event
                if len(state["buf"]) > MAX_FIELD_BYTES:
                    raise ValidationFailed(f"Field {current!r} is too long.", code="field_too_long")

    try:
        parser = PushMultipartParser(boundary, max_header_size=8192, max_segment_count=64)
        async for piece in request.stream():
            if piece:
                await handle(parser, piece)
        if not parser.closed:
            await handle(parser, b"")
        if not parser.closed:
            raise ValidationFailed("The multipart body is incomplete.", code="invalid_multipart")
    except ParserError as e:
        if state["sink"] is not None:
            state["sink"].abort()
        raise ValidationFailed(f"Invalid multipart body: {e}", code="invalid_multipart") from None
    except BaseException:
        if state["sink"] is not None:
            state["sink"].abort()
        raise
    sink: _Sink | None = state["sink"]
    return fields, sink


async def _read_limited(request: Request[Any, Any, Any], limit: int) -> bytes:
    body = bytearray()
    async for piece in request.stream():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.", maxBytes=limit)
    return bytes(body)


# -- one-request upload -----------------------------------------------------------------


@post(
    "/api/mcp/upload",
    request_max_body_size=None,
    status_code=200,
    tags=["Uploads"],
    summary="Upload cover art or audio (multipart file + type)",
)
async def upload(request: Request[Any, Any, Any]) -> Response[Any]:
    principal = await _bearer(request)
    uploads = services(request).uploads
    ctype, options = _content_type(request)
    if ctype != "multipart/form-data" or not options.get("boundary"):
        raise ValidationFailed(
            "Send multipart/form-data with a 'file' part and a 'type' field.",
            code="unsupported_media_type",
        )
    limit = uploads.policy.max_direct_bytes
    if (request.content_length or 0) > limit + MULTIPART_OVERHEAD:
        raise PayloadTooLarge(f"The upload is larger than {limit} bytes.", maxBytes=limit)
    names: dict[str, str | None] = {}

    def open_sink(segment: MultipartSegment) -> _Sink:
        names["file"] = segment.filename
        names["type"] = segment.content_type
        return _Sink(uploads.staging_path("direct"), limit, "file")

    fields, sink = await _stream_multipart(request, options["boundary"], "file", open_sink)
    if sink is None:
        raise ValidationFailed("The 'file' part is missing.", code="missing_file", field="file")
    try:
        digest = await sink.close()
        kind = parse_kind(fields.get("type"))
        file_name = fields.get("fileName") or names.get("file")
        published = await in_thread(
            uploads.publish_staged,
            principal.account_id,
            kind,
            sink.path,
            file_name,
            fields.get("fileType") or names.get("type"),
            source="direct",
            sha256=digest,
        )
    finally:
        sink.path.unlink(missing_ok=True)
    return _json(upload_result(published))


# -- chunked sessions -------------------------------------------------------------------


@post(
    "/api/mcp/upload/chunk",
    request_max_body_size=None,
    status_code=200,
    tags=["Uploads"],
    summary="Upload one chunk of a prepared upload session",
)
async def upload_chunk(request: Request[Any, Any, Any]) -> Response[Any]:
    uploads = services(request).uploads
    ctype, options = _content_type(request)
    max_chunk = uploads.policy.max_chunk_bytes
    if ctype == "application/json":
        limit = (max_chunk * 4) // 3 + MULTIPART_OVERHEAD
        body = await _read_limited(request, limit)
        try:
            data = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            raise ValidationFailed("Body is not valid JSON.", code="invalid_json") from None
        if not isinstance(data, dict):
            raise ValidationFailed("Body must be a JSON object.", code="invalid_json")
        session, _ = await _upload_auth(request, _str(data.get("sessionId")))
        index = _int_field(data.get("chunkIndex"), "chunkIndex")
        session.check_chunk(index, _opt_kind(data.get("type")))
        chunk = decode_base64(
            _str(data.get("chunkBase64")) or "", what="chunkBase64", limit=session.chunk_bytes
        )
        staged = uploads.staging_path("chunk")
        sink = _Sink(staged, session.expected_size(index), "chunk")
        await sink.write(chunk)
        digest = await sink.close()
    elif ctype == "multipart/form-data":
        if not options.get("boundary"):
            raise ValidationFailed("multipart body without boundary.", code="invalid_multipart")
        # The token names its session: authorise before reading the body.
        session, _ = await _upload_auth(request, request.headers.get("x-session-id"))
        fields, maybe = await _stream_multipart(
            request,
            options["boundary"],
            "chunk",
            lambda _seg: _Sink(uploads.staging_path("chunk"), session.chunk_bytes, "chunk"),
        )
        if maybe is None:
            raise ValidationFailed("The 'chunk' part is missing.", code="missing_chunk")
        sink = maybe
        try:
            digest = await sink.close()
            if fields.get("sessionId") and fields["sessionId"] != str(session.id):
                raise InvalidUploadToken("The upload token belongs to another upload session.")
            index = _int_field(fields.get("chunkIndex"), "chunkIndex")
            session.check_chunk(index, _opt_kind(fields.get("type")))
        except BaseException:
            sink.path.unlink(missing_ok=True)
            raise
        staged = sink.path
    else:
        session, _ = await _upload_auth(request, request.headers.get("x-session-id"))
        index = _int_field(request.headers.get("x-chunk-index"), "x-chunk-index")
        session.check_chunk(index, _opt_kind(request.headers.get("x-upload-type")))
        expected = session.expected_size(index)
        if (request.content_length or 0) > expected:
            raise PayloadTooLarge(
                f"Chunk {index} may be at most {expected} bytes.", maxBytes=expected
            )
        staged = uploads.staging_path("chunk")
        sink = _Sink(staged, expected, "chunk")
        try:
            async for piece in request.stream():
                if piece:
                    await sink.write(piece)
            digest = await sink.close()
        except BaseException:
            sink.abort()
            raise
    accepted = await in_thread(uploads.accept_chunk, session.id, index, staged, sink.size, digest)
    return _json(
        {
            "success": True,
            "sessionId": str(accepted.session_id),
            "chunkIndex": accepted.index,
            "size": accepted.size,
            "sha256": accepted.sha256,
            "duplicate": accepted.duplicate,
            "receivedChunks": accepted.received,
            "totalChunks": accepted.total,
        }
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _opt_kind(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return parse_kind(value if isinstance(value, str) else None)


@post(
    "/api/mcp/upload/complete",
    status_code=200,
    tags=["Uploads"],
    summary="Assemble, verify and publish a chunked upload",
)
async def upload_complete(request: Request[Any, Any, Any]) -> Response[Any]:
    from backline.api.forms import read_fields

    fields = await read_fields(request, {"sessionId", "fileName", "fileType", "type"})
    session, _ = await _upload_auth(request, fields.get("sessionId"))
    uploads = services(request).uploads
    published = await in_thread(
        uploads.complete,
        session,
        file_name=fields.get("fileName") or None,
        file_type=fields.get("fileType") or None,
        upload_type=_opt_kind(fields.get("type")),
    )
    return _json(upload_result(published))


@get("/api/mcp/upload/status", tags=["Uploads"], summary="Chunks received so far (resume)")
async def upload_status(request: Request[Any, Any, Any]) -> Response[Any]:
    session, _ = await _upload_auth(request, request.query_params.get("sessionId"))
    return _json(services(request).uploads.session_status(session))


# -- serving files ----------------------------------------------------------------------

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """A single byte range → (start, end inclusive); None = whole file; "bad" = 416."""
    if not header:
        return None
    value = header.strip()
    if "," in value:
        return None  # multiple ranges: answer the whole file (RFC 9110 allows it)
    m = _RANGE_RE.match(value.replace(" ", ""))
    if not m:
        return None  # unknown unit or syntax: ignore the header
    first, last = m.groups()
    if not first and not last:
        return None
    if not first:
        n = int(last)
        if n == 0:
            return "bad"
        return max(0, size - n), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "bad"
    return start, end


async def _file_body(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as fh:
        await fh.seek(start)
        remaining = length
        while remaining > 0:
            block = await fh.read(min(READ_BYTES, remaining))
            if not block:
                break
            remaining -= len(block)
            yield block


async def _owned_file(
    request: Request[Any, Any, Any], bucket: str, user_id: str, name: str
) -> tuple[Any, Path]:
    """The file record and its local bytes, for its owner or a signed URL's holder."""
    path_only = f"/api/files/{bucket}/{user_id}/{name}"
    ref = parse_file_url(path_only)
    uploads = services(request).uploads
    expires, signature = request.query_params.get("expires"), request.query_params.get("signature")
    if expires and signature:
        # A signed, expiring URL (api/signing.py, e.g. a profile's avatar) grants this path.
        if not verify_signed_path(api_config(request).secret_key, path_only, expires, signature):
            raise NotFound("File not found.", code="file_not_found")
        f = await in_thread(uploads.get_file, ref, None)
    else:
        principal = await _principal(request)
        if principal is None:
            raise Unauthorized("Sign in first.", code="unauthorized")
        f = await in_thread(uploads.get_file, ref, principal.account_id)
    path = uploads.open_blob(f)
    if path is None or not path.exists():
        raise DomainError("The file's bytes are unavailable.", code="file_unavailable")
    return f, path


@get(
    "/api/files/{bucket:str}/{user_id:str}/{name:str}",
    tags=["Uploads"],
    summary="Download one of your files",
)
async def get_file(
    request: Request[Any, Any, Any],
    bucket: FromPath[str],
    user_id: FromPath[str],
    name: FromPath[str],
) -> Response[Any]:
    f, path = await _owned_file(request, bucket, user_id, name)
    size = f.size
    etag = f'"{f.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{f.name}"',
    }
    inm = request.headers.get("if-none-match")
    if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
        return Response(content=b"", status_code=304, headers=headers)
    rng: tuple[int, int] | str | None = None
    if_range = request.headers.get("if-range")
    if not if_range or if_range.strip() == etag:
        rng = parse_range(request.headers.get("range"), size)
    if rng == "bad":
        headers["Content-Range"] = f"bytes */{size}"
        return render(
            request,
            416,
            "range_not_satisfiable",
            "The requested range is outside the file.",
            headers,
        )
    status = 200
    start, length = 0, size
    if isinstance(rng, tuple):
        start, end = rng
        length = end - start + 1
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(length)
    return Stream(
        content=_file_body(path, start, length),
        status_code=status,
        media_type=f.content_type,
        headers=headers,
    )


@head(
    "/api/files/{bucket:str}/{user_id:str}/{name:str}",
    tags=["Uploads"],
    summary="Size, type and ETag of one of your files",
)
async def head_file(
    request: Request[Any, Any, Any],
    bucket: FromPath[str],
    user_id: FromPath[str],
    name: FromPath[str],
) -> Response[None]:
    f, _path = await _owned_file(request, bucket, user_id, name)
    # Litestar cannot serialise an empty body under a non-JSON media type: headers only.
    return Response(
        content=None,
        headers={
            "Content-Type": f.content_type,
            "ETag": f'"{f.sha256}"',
            "Accept-Ranges": "bytes",
            "Content-Length": str(f.size),
            "X-Content-Type-Options": "nosniff",
        },
    )


# -- errors of this surface -------------------------------------------------------------


def _too_large(request: Request[Any, Any, Any], exc: PayloadTooLarge) -> Response[Any]:
    return render(request, 413, exc.code, exc.message, **exc.details)


def _bad_token(request: Request[Any, Any, Any], exc: InvalidUploadToken) -> Response[Any]:
    return render(request, 401, exc.code, exc.message, **exc.details)


ROUTES = Router(
    path="/",
    route_handlers=[upload, upload_chunk, upload_complete, upload_status, get_file, head_file],
    exception_handlers={PayloadTooLarge: _too_large, InvalidUploadToken: _bad_token},
)
