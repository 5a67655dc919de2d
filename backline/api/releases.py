"""Releases over REST (``/api/mcp/draft``, ``/api/mcp/submit``, ``/api/mcp/releases…``,
``/api/mcp/release-jobs/:id``) and the shared bodies the MCP tools call.

One set of msgspec Structs serves both surfaces (``backline/api/mcp/tools/releases.py``).
Writes take a bearer token (the ``/api/mcp/*`` family is CSRF-exempt, so a cookie is
not enough); reads take a bearer token or a session. Another account's release or job
is a 404. Submit is rate limited per account: ``429`` with ``retryAfterSeconds``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

import msgspec
from limits import RateLimitItem, parse
from limits.strategies import FixedWindowRateLimiter
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.params import FromPath, FromQuery

from backline.api.auth import Principal, api_config, require_principal, services
from backline.api.deps import Services
from backline.api.forms import in_thread
from backline.api.mcp.endpoint import provenance_of
from backline.api.profile import iso_ms
from backline.api.ratelimit import enforce
from backline.application.releases import JobResult, SubmitResult, parse_release_id
from backline.domain.errors import NotFound, RateLimited, Unauthorized, ValidationFailed

PROJECTION = "release_status"
MAX_LIST = 100


# -- schemas -----------------------------------------------------------------------------------


class DraftInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    releaseId: str | None = None
    conversationId: str | None = None
    mode: str = "delta"
    release: dict[str, Any] | None = None
    tracks: list[dict[str, Any]] | None = None
    trackPatches: list[dict[str, Any]] | None = None
    uploadRequests: list[Any] | None = None
    status: str | None = None
    provenance: str | None = None


class DraftOutput(msgspec.Struct, kw_only=True):
    success: bool
    releaseId: str
    conversationId: str | None
    draftVersion: int
    created: bool
    status: str
    release: dict[str, Any]
    tracks: list[dict[str, Any]]
    uploadRequests: list[Any]


class SubmitInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    release: dict[str, Any] | None = None
    tracks: list[dict[str, Any]] | None = None
    releaseId: str | None = None
    conversationId: str | None = None
    tokenOffset: bool = False
    idempotencyKey: str | None = None
    provenance: str | None = None


class CostBreakdown(msgspec.Struct, kw_only=True):
    tracks: int
    humanTracks: int
    aiTracks: int
    trackCredits: int
    tokenOffsetCredits: int


class SubmitOutput(msgspec.Struct, kw_only=True):
    success: bool
    releaseId: str
    jobId: str
    status: str
    creditsCharged: int
    newBalance: int
    breakdown: CostBreakdown
    tokenOffset: bool
    upc: str
    isrcs: list[str]
    replayed: bool


class ListInput(msgspec.Struct, kw_only=True):
    limit: int = MAX_LIST


class ReleaseSummary(msgspec.Struct, kw_only=True):
    releaseId: str
    title: str | None
    primaryArtistName: str | None
    genre: str | None
    releaseDate: str | None
    state: str
    status: str
    upc: str | None
    trackCount: int
    creditsCharged: int
    tokenOffset: bool
    mcpProvenance: str | None
    latestJobId: str | None
    createdAt: str
    updatedAt: str
    submittedAt: str | None


class ListOutput(msgspec.Struct, kw_only=True):
    releases: list[ReleaseSummary]
    count: int


class ReleaseIdInput(msgspec.Struct, kw_only=True):
    releaseId: str


class MetadataOutput(msgspec.Struct, kw_only=True):
    releaseId: str
    source: str  # draft | submitted
    state: str
    status: str
    release: dict[str, Any]
    tracks: list[dict[str, Any]]
    uploadRequests: list[Any] | None
    draftVersion: int
    conversationId: str | None
    updatedAt: str


class StoreStatusOut(msgspec.Struct, kw_only=True):
    store: str
    status: str
    attempts: int
    error: str | None
    updatedAt: str | None


class StatusOutput(msgspec.Struct, kw_only=True):
    releaseId: str
    state: str
    status: str
    latestJobId: str | None
    stores: list[StoreStatusOut]
    jobs: list[dict[str, Any]]


class JobIdInput(msgspec.Struct, kw_only=True):
    jobId: str


class JobOutput(msgspec.Struct, kw_only=True):
    jobId: str
    releaseId: str
    kind: str
    status: str
    error: str | None
    stores: list[StoreStatusOut]
    refundedCredits: int
    createdAt: str
    updatedAt: str


class UpdateInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    releaseId: str
    release: dict[str, Any] | None = None
    tracks: list[dict[str, Any]] | None = None
    trackPatches: list[dict[str, Any]] | None = None
    provenance: str | None = None


class TakedownInput(msgspec.Struct, kw_only=True, omit_defaults=True):
    releaseId: str
    reason: str = ""
    provenance: str | None = None


class JobStarted(msgspec.Struct, kw_only=True):
    releaseId: str
    jobId: str
    kind: str
    status: str


class DraftHistoryOutput(msgspec.Struct, kw_only=True):
    releaseId: str
    snapshots: list[dict[str, Any]]


# -- shared bodies ---------------------------------------------------------------------------


def _catch_up(svc: Services, position: int | None = None) -> None:
    head = position if position is not None else svc.releases.store.max_position()
    svc.runner.wait_for(head, [PROJECTION], timeout=3.0)


def draft_body(svc: Services, account_id: UUID, args: DraftInput, provenance: str) -> DraftOutput:
    body = msgspec.to_builtins(args)
    result = svc.releases.save_draft(account_id, body, provenance=provenance)
    return DraftOutput(
        success=True,
        releaseId=str(result.release_id),
        conversationId=args.conversationId,
        draftVersion=result.draft_version,
        created=result.created,
        status=result.draft.status,
        release=result.draft.release,
        tracks=result.draft.tracks,
        uploadRequests=result.draft.upload_requests,
    )


def submit_output(r: SubmitResult) -> SubmitOutput:
    return SubmitOutput(
        success=True,
        releaseId=str(r.release_id),
        jobId=str(r.job_id),
        status=r.status,
        creditsCharged=r.credits_charged,
        newBalance=r.new_balance,
        breakdown=CostBreakdown(
            tracks=r.ai_tracks + r.human_tracks,
            humanTracks=r.human_tracks,
            aiTracks=r.ai_tracks,
            trackCredits=r.track_credits,
            tokenOffsetCredits=r.token_offset_credits,
        ),
        tokenOffset=r.token_offset_credits > 0,
        upc=r.upc,
        isrcs=r.isrcs,
        replayed=r.replayed,
    )


def check_submit_rate(svc: Services, account_id: UUID) -> None:
    """Count one submission against the account's budget (one storage round trip when
    allowed; the window is read only to say how long to wait when refused)."""
    limit = svc.releases.policy.submit_rate_limit
    item = _limit_item(limit)
    if FixedWindowRateLimiter(svc.rate_limits).hit(item, "release_submit", f"acct:{account_id}"):
        return
    enforce(svc.rate_limits, limit, "release_submit", f"acct:{account_id}")


@lru_cache(maxsize=16)
def _limit_item(limit: str) -> RateLimitItem:
    return parse(limit)


def submit_body(
    svc: Services,
    account_id: UUID,
    args: SubmitInput,
    provenance: str,
    idempotency_key: str | None,
) -> SubmitOutput:
    check_submit_rate(svc, account_id)
    body = msgspec.to_builtins(args)
    result = svc.releases.submit(
        account_id,
        body,
        provenance=provenance,
        idempotency_key=idempotency_key or args.idempotencyKey,
    )
    return submit_output(result)


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise ValidationFailed(
            f"limit must be an integer from 1 to {MAX_LIST}.", code="invalid_limit", field="limit"
        )
    return limit


def _summary(row: dict[str, Any]) -> ReleaseSummary:
    return ReleaseSummary(
        releaseId=row["release_id"],
        title=row["title"],
        primaryArtistName=row["primary_artist_name"],
        genre=row["genre"],
        releaseDate=row["release_date"],
        state=row["state"],
        status=row["status"],
        upc=row["upc"],
        trackCount=int(row["track_count"]),
        creditsCharged=int(row["credits_charged"]),
        tokenOffset=bool(row["token_offset"]),
        mcpProvenance=row["mcp_provenance"],
        latestJobId=row["latest_job_id"],
        createdAt=iso_ms(row["created_at"]),
        updatedAt=iso_ms(row["updated_at"]),
        submittedAt=iso_ms(row["submitted_at"]) if row["submitted_at"] else None,
    )


def list_body(svc: Services, account_id: UUID, limit: object) -> ListOutput:
    n = check_limit(limit)
    _catch_up(svc)
    rows = svc.release_queries.list_releases(account_id, n)
    return ListOutput(releases=[_summary(r) for r in rows], count=len(rows))


def _row(svc: Services, account_id: UUID, release_id: FromPath[str]) -> dict[str, Any]:
    rid = parse_release_id(release_id)
    if rid is None:
        raise ValidationFailed("releaseId is required.", code="invalid_field", field="releaseId")
    _catch_up(svc)
    row = svc.release_queries.release(account_id, rid)
    if row is None:
        raise NotFound("Release not found.", code="release_not_found")
    return row


def metadata_body(svc: Services, account_id: UUID, release_id: FromPath[str]) -> MetadataOutput:
    row = _row(svc, account_id, release_id)
    meta = row["metadata"] or {}
    tracks = meta.get("tracks") or []
    if row["state"] == "draft" and tracks:
        tracks = svc.releases.with_detections(account_id, tracks)
    return MetadataOutput(
        releaseId=row["release_id"],
        source="draft" if row["state"] == "draft" else "submitted",
        state=row["state"],
        status=row["status"],
        release=meta.get("release") or {},
        tracks=tracks,
        uploadRequests=meta.get("uploadRequests"),
        draftVersion=int(row["draft_count"]),
        conversationId=row["conversation_id"],
        updatedAt=iso_ms(row["updated_at"]),
    )


def _store_out(store: str, s: dict[str, Any]) -> StoreStatusOut:
    return StoreStatusOut(
        store=store,
        status=str(s.get("status")),
        attempts=int(s.get("attempts") or 0),
        error=s.get("error"),
        updatedAt=iso_ms(s["updatedAt"]) if s.get("updatedAt") else None,
    )


def status_body(svc: Services, account_id: UUID, release_id: FromPath[str]) -> StatusOutput:
    row = _row(svc, account_id, release_id)
    rid = UUID(row["release_id"])
    stores = [
        StoreStatusOut(
            store=s["store"],
            status=s["status"],
            attempts=int(s["attempts"]),
            error=s["error"],
            updatedAt=iso_ms(s["updated_at"]) if s["updated_at"] else None,
        )
        for s in svc.release_queries.stores(rid)
    ]
    jobs = [
        {
            "jobId": j["job_id"],
            "kind": j["kind"],
            "status": j["status"],
            "error": j["error"],
            "createdAt": iso_ms(j["created_at"]),
        }
        for j in svc.release_queries.jobs_of(rid)
    ]
    return StatusOutput(
        releaseId=row["release_id"],
        state=row["state"],
        status=row["status"],
        latestJobId=row["latest_job_id"],
        stores=stores,
        jobs=jobs,
    )


def job_body(svc: Services, account_id: UUID, job_id: FromPath[str]) -> JobOutput:
    try:
        jid = UUID(str(job_id))
    except ValueError:
        raise NotFound("Job not found.", code="job_not_found") from None
    _catch_up(svc)
    row = svc.release_queries.job(account_id, jid)
    if row is None:
        raise NotFound("Job not found.", code="job_not_found")
    return JobOutput(
        jobId=row["job_id"],
        releaseId=row["release_id"],
        kind=row["kind"],
        status=row["status"],
        error=row["error"],
        stores=[_store_out(k, v) for k, v in sorted((row["stores"] or {}).items())],
        refundedCredits=int(row["refunded"]),
        createdAt=iso_ms(row["created_at"]),
        updatedAt=iso_ms(row["updated_at"]),
    )


def history_body(svc: Services, account_id: UUID, release_id: FromPath[str]) -> DraftHistoryOutput:
    rid = parse_release_id(release_id)
    if rid is None:
        raise NotFound("Release not found.", code="release_not_found")
    return DraftHistoryOutput(
        releaseId=str(rid), snapshots=svc.releases.draft_history(account_id, rid)
    )


def _started(r: JobResult) -> JobStarted:
    return JobStarted(
        releaseId=str(r.release_id), jobId=str(r.job_id), kind=r.kind, status="queued"
    )


def update_body(svc: Services, account_id: UUID, args: UpdateInput, provenance: str) -> JobStarted:
    rid = parse_release_id(args.releaseId)
    if rid is None:
        raise NotFound("Release not found.", code="release_not_found")
    body = msgspec.to_builtins(args)
    r = svc.releases.update_metadata(account_id, rid, body, provenance=provenance)
    return JobStarted(
        releaseId=str(r.release_id), jobId=str(r.job_id), kind=r.kind, status="queued"
    )


def takedown_body(
    svc: Services, account_id: UUID, args: TakedownInput, provenance: str
) -> JobStarted:
    rid = parse_release_id(args.releaseId)
    if rid is None:
        raise NotFound("Release not found.", code="release_not_found")
    r = svc.releases.takedown(account_id, rid, reason=args.reason, provenance=provenance)
    return JobStarted(
        releaseId=str(r.release_id), jobId=str(r.job_id), kind=r.kind, status="queued"
    )


# -- REST --------------------------------------------------------------------------------------


def _decode(body: bytes, type_: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=type_)
    except msgspec.ValidationError as e:
        raise ValidationFailed(f"Invalid request: {e}", code="invalid_request") from None
    except msgspec.DecodeError:
        raise ValidationFailed("Body is not valid JSON.", code="invalid_json") from None


def _with_id(body: bytes, release_id: str, type_: type[Any]) -> Any:
    raw = _decode(body, dict[str, Any])
    try:
        return msgspec.convert({**raw, "releaseId": release_id}, type_)
    except msgspec.ValidationError as e:
        raise ValidationFailed(f"Invalid request: {e}", code="invalid_request") from None


def _bearer(request: Request[Any, Any, Any]) -> Principal:
    principal = require_principal(request)
    if principal.via != "bearer":
        raise Unauthorized(
            "Send an OAuth access token: Authorization: Bearer <token>.", code="unauthorized"
        )
    return principal


def _provenance(request: Request[Any, Any, Any], args: Any) -> str:
    return provenance_of(request, api_config(request), {"provenance": args.provenance})


class ReleasesController(Controller):
    tags = ["Releases"]

    @post(
        "/api/mcp/draft",
        summary="Save a draft snapshot (delta merges, snapshot replaces)",
        status_code=200,
    )
    async def draft(self, request: Request[Any, Any, Any]) -> DraftOutput:
        principal = await in_thread(_bearer, request)
        args = _decode(await request.body(), DraftInput)
        svc = services(request)
        return await in_thread(
            draft_body, svc, principal.account_id, args, _provenance(request, args)
        )

    @post(
        "/api/mcp/submit",
        summary="Submit a release (billed in credits; rate limited)",
        status_code=200,
    )
    async def submit(self, request: Request[Any, Any, Any]) -> Response[Any]:
        args = _decode(await request.body(), SubmitInput)
        svc = services(request)

        def run() -> SubmitOutput:
            principal = _bearer(request)  # one thread hop for auth and the command
            return submit_body(
                svc,
                principal.account_id,
                args,
                _provenance(request, args),
                request.headers.get("idempotency-key"),
            )

        try:
            out = await in_thread(run)
        except RateLimited as e:
            retry = e.retry_after_seconds
            body = {
                "error": {"code": e.code, "message": e.message, "retryAfterSeconds": retry},
                "retryAfterSeconds": retry,
            }
            return Response(
                msgspec.json.encode(body),
                status_code=429,
                media_type=MediaType.JSON,
                headers={"Retry-After": str(retry)},
            )
        return Response(msgspec.json.encode(out), status_code=200, media_type=MediaType.JSON)

    @get("/api/mcp/releases", summary="The account's most recent releases")
    async def list_releases(
        self, request: Request[Any, Any, Any], limit: FromQuery[int] = MAX_LIST
    ) -> ListOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(list_body, services(request), principal.account_id, limit)

    @get("/api/mcp/releases/{release_id:str}/metadata", summary="Merged release metadata")
    async def metadata(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> MetadataOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(metadata_body, services(request), principal.account_id, release_id)

    @get("/api/mcp/releases/{release_id:str}/status", summary="Per-store and aggregate status")
    async def status(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> StatusOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(status_body, services(request), principal.account_id, release_id)

    @get("/api/mcp/releases/{release_id:str}/drafts", summary="Every draft snapshot, oldest first")
    async def drafts(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> DraftHistoryOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(history_body, services(request), principal.account_id, release_id)

    @post(
        "/api/mcp/releases/{release_id:str}/update",
        summary="Update a submitted release's metadata (new delivery job)",
        status_code=202,
    )
    async def update(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> JobStarted:
        principal = await in_thread(_bearer, request)
        args = _with_id(await request.body(), release_id, UpdateInput)
        svc = services(request)
        return await in_thread(
            update_body, svc, principal.account_id, args, _provenance(request, args)
        )

    @post(
        "/api/mcp/releases/{release_id:str}/takedown",
        summary="Take a submitted release down from every store (new delivery job)",
        status_code=202,
    )
    async def takedown(
        self, request: Request[Any, Any, Any], release_id: FromPath[str]
    ) -> JobStarted:
        principal = await in_thread(_bearer, request)
        args = _with_id(await request.body(), release_id, TakedownInput)
        svc = services(request)
        return await in_thread(
            takedown_body, svc, principal.account_id, args, _provenance(request, args)
        )

    @get("/api/mcp/release-jobs/{job_id:str}", summary="Job processing status and errors")
    async def job(self, request: Request[Any, Any, Any], job_id: FromPath[str]) -> JobOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(job_body, services(request), principal.account_id, job_id)
