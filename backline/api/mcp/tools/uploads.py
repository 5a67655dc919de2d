"""Upload tools (seed 001): ``upload_file``, ``prepare_local_file_upload``,
``detect_audio_ai`` and ``generate_cover_art``."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from backline.api.mcp.registry import ToolContext, tool
from backline.api.ratelimit import RateDecision, enforce
from backline.api.uploads import UploadResult, upload_result
from backline.application.uploads import UPLOAD_HEADER
from backline.domain.errors import ValidationFailed


class UploadFileInput(msgspec.Struct, kw_only=True):
    fileName: str
    type: str
    fileBase64: str
    fileType: str | None = None


@tool(
    "upload_file",
    "Upload a small cover-art (JPEG/PNG) or audio (WAV/FLAC/AIFF/MP3) file as base64. "
    "type is 'coverArt' or 'audio'. The content is validated (fully decoded); the answer's "
    "fileUrl goes into release.cover_art_file_url or a track's audio_file_url. For large "
    "files use prepare_local_file_upload.",
    input=UploadFileInput,
    output=UploadResult,
)
def upload_file(ctx: ToolContext, args: UploadFileInput) -> UploadResult:
    principal = ctx.require_principal()
    published = ctx.services.uploads.upload_inline(
        principal.account_id, args.type, args.fileBase64, args.fileName, args.fileType
    )
    return upload_result(published)


class PrepareUploadInput(msgspec.Struct, kw_only=True):
    fileName: str
    fileSize: int
    type: str
    fileType: str | None = None
    chunkBytes: int | None = None


class PrepareUploadOutput(msgspec.Struct, kw_only=True):
    session_id: str
    upload_token: str
    upload_header_name: str
    chunk_endpoint: str
    complete_endpoint: str
    recommended_chunk_bytes: int
    max_chunk_bytes: int
    total_chunks: int
    expires_at: str
    instructions: str


@tool(
    "prepare_local_file_upload",
    "Start a chunked upload of a large local file (audio master or cover art). Returns a "
    "session and a scoped upload token. Split the file into chunks of exactly "
    "recommended_chunk_bytes (the last one shorter), POST each to chunk_endpoint as raw "
    "bytes (headers x-mcp-upload-token, x-session-id, x-chunk-index, x-upload-type) in any "
    "order, then POST {sessionId, fileName, fileType, type} to complete_endpoint with the "
    "same token. Re-sending a chunk is safe.",
    input=PrepareUploadInput,
    output=PrepareUploadOutput,
)
def prepare_local_file_upload(ctx: ToolContext, args: PrepareUploadInput) -> PrepareUploadOutput:
    principal = ctx.require_principal()
    uploads = ctx.services.uploads
    prepared = uploads.prepare(
        principal.account_id,
        args.type,
        args.fileName,
        args.fileSize,
        args.fileType,
        chunk_bytes=args.chunkBytes,
        provenance=ctx.provenance,
    )
    base = ctx.public_url
    return PrepareUploadOutput(
        session_id=str(prepared.session_id),
        upload_token=prepared.upload_token,
        upload_header_name=UPLOAD_HEADER,
        chunk_endpoint=f"{base}/api/mcp/upload/chunk",
        complete_endpoint=f"{base}/api/mcp/upload/complete",
        recommended_chunk_bytes=prepared.chunk_bytes,
        max_chunk_bytes=prepared.chunk_bytes,
        total_chunks=prepared.total_chunks,
        expires_at=prepared.expires_at_iso,
        instructions=(
            f"Send {prepared.total_chunks} chunk(s) of {prepared.chunk_bytes} bytes "
            "(the last may be shorter), chunkIndex 0-based, then call complete_endpoint."
        ),
    )


class DetectInput(msgspec.Struct, kw_only=True):
    fileUrl: str
    fileName: str | None = None
    releaseId: str | None = None
    conversationId: str | None = None
    trackIndex: int | None = None
    provenance: str | None = None


class DetectOutput(msgspec.Struct, kw_only=True):
    status: str
    containsAi: bool | None
    aiScore: float | None
    predictedModel: str | None
    predictedModelScore: float | None
    provider: str
    model: str
    message: str | None
    cached: bool


@tool(
    "detect_audio_ai",
    "Check an uploaded audio file (a fileUrl in your audio bucket) for AI generation. "
    "status is ok whenever the detector returned a result (whatever containsAi says); "
    "other values: skipped, download_failed, too_large. Results are cached per file "
    "(cached: true on repeat calls). trackIndex links the result to that draft track.",
    input=DetectInput,
    output=DetectOutput,
)
def detect_audio_ai(ctx: ToolContext, args: DetectInput) -> DetectOutput:
    principal = ctx.require_principal()
    result = ctx.services.uploads.detect(
        principal.account_id,
        args.fileUrl,
        file_name=args.fileName,
        release_id=args.releaseId,
        conversation_id=args.conversationId,
        track_index=args.trackIndex,
    )
    d = result.detection
    return DetectOutput(
        status=d.status,
        containsAi=d.contains_ai,
        aiScore=d.ai_score,
        predictedModel=d.predicted_model,
        predictedModelScore=d.predicted_model_score,
        provider=d.provider,
        model=d.model,
        message=d.message,
        cached=result.cached,
    )


class CoverArtInput(msgspec.Struct, kw_only=True):
    prompt: str
    baseFileUrl: str | None = None
    baseImageBase64: str | None = None
    baseImageMimeType: str | None = None
    releaseId: str | None = None
    conversationId: str | None = None
    returnBase64: bool = False
    fileName: str | None = None
    provenance: str | None = None


class RateLimitInfo(msgspec.Struct):
    remaining: int


class CoverArtOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    fileUrl: str
    bucket: str
    key: str
    fileName: str
    prompt: str
    model: str
    modelVariant: str
    imageSize: str
    aspectRatio: str
    edited: bool
    rateLimit: RateLimitInfo
    provider: str
    distributionReady: bool
    warnings: list[str]
    imageBase64: str | None = None
    mimeType: str | None = None


@tool(
    "generate_cover_art",
    "Generate (or, with baseFileUrl / baseImageBase64, edit) a square album cover from a "
    "prompt (1-1500 characters) and store it in your cover-art bucket; the fileUrl is a "
    "drop-in release.cover_art_file_url. Budget: cover_art_generate, 5 per 2 minutes per "
    "user by default (error.code 429 with error.data.retryAfterSeconds).",
    input=CoverArtInput,
    output=CoverArtOutput,
)
def generate_cover_art(ctx: ToolContext, args: CoverArtInput) -> CoverArtOutput:
    principal = ctx.require_principal()
    uploads = ctx.services.uploads
    if len(args.prompt) > 4 * 1500:
        raise ValidationFailed("prompt must be 1 to 1500 characters.", code="invalid_prompt")
    decision: dict[str, RateDecision] = {}

    def budget() -> None:
        decision["d"] = enforce(
            ctx.services.rate_limits,
            uploads.policy.cover_art_rate_limit,
            "cover_art_generate",
            f"acct:{principal.account_id}",
        )

    result = uploads.generate_cover_art(
        principal.account_id,
        args.prompt,
        base_file_url=args.baseFileUrl,
        base_image_b64=args.baseImageBase64,
        base_image_mime=args.baseImageMimeType,
        file_name=args.fileName,
        release_id=args.releaseId,
        conversation_id=args.conversationId,
        check_budget=budget,
    )
    p = result.published
    extra: dict[str, Any] = {}
    if args.returnBase64:
        extra["imageBase64"] = base64.b64encode(uploads.read_file_bytes(p)).decode("ascii")
        extra["mimeType"] = p.content_type
    return CoverArtOutput(
        fileUrl=p.file_url,
        bucket=p.bucket,
        key=p.key,
        fileName=p.file_name,
        prompt=args.prompt.strip(),
        model=result.image.model,
        modelVariant=result.image.model_variant,
        imageSize=result.image.image_size,
        aspectRatio="1:1",
        edited=result.edited,
        rateLimit=RateLimitInfo(remaining=decision["d"].remaining if "d" in decision else 0),
        provider=result.image.provider,
        distributionReady=p.distribution_ready,
        warnings=list(p.warnings),
        **extra,
    )
