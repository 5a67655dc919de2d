"""Release tools (seeds 000/001): drafts, submission, queries, update and takedown.

Tools that address a release or a job take ``releaseId`` / ``jobId`` (camelCase, as the
seed's bodies do). ``submit_release`` honours an ``Idempotency-Key`` header on the MCP
request or an ``idempotencyKey`` argument, and is rate limited (JSON-RPC
``error.code = 429`` with ``error.data.retryAfterSeconds``).
"""

from __future__ import annotations

from backline.api.mcp.registry import ToolContext, tool
from backline.api.releases import (
    DraftHistoryOutput,
    DraftInput,
    DraftOutput,
    JobIdInput,
    JobOutput,
    JobStarted,
    ListInput,
    ListOutput,
    MetadataOutput,
    ReleaseIdInput,
    StatusOutput,
    SubmitInput,
    SubmitOutput,
    TakedownInput,
    UpdateInput,
    draft_body,
    history_body,
    job_body,
    list_body,
    metadata_body,
    status_body,
    submit_body,
    takedown_body,
    update_body,
)


def _provenance(ctx: ToolContext, arg: str | None) -> str:
    return "AIMD" if ctx.provenance == "AIMD" or arg == "AIMD" else "MCP"


@tool(
    "save_draft",
    "Save work-in-progress release metadata before submission. mode 'delta' (default) "
    "merges release (null removes a key) and tracks by position; trackPatches patch tracks "
    "by index ({index, patch}); mode 'snapshot' replaces the whole draft. Address the "
    "draft by releaseId or conversationId; every save is kept in the draft's history.",
    input=DraftInput,
    output=DraftOutput,
)
def save_draft(ctx: ToolContext, args: DraftInput) -> DraftOutput:
    principal = ctx.require_principal()
    return draft_body(ctx.services, principal.account_id, args, _provenance(ctx, args.provenance))


@tool(
    "submit_release",
    "Submit a release for distribution; debits credits from the account (1 per human "
    "song, 2 per AI-detected song, +1 with tokenOffset). release: title, "
    "primary_artist_name, genre, release_date (YYYY-MM-DD), cover_art_file_url, optional "
    "upc; tracks: title, audio_file_url, explicit_flag, writers [{name}], optional isrc. "
    "Missing ISRCs/UPC are assigned. Resubmitting the same releaseId/conversationId or "
    "idempotencyKey returns the first result and charges nothing.",
    input=SubmitInput,
    output=SubmitOutput,
)
def submit_release(ctx: ToolContext, args: SubmitInput) -> SubmitOutput:
    principal = ctx.require_principal()
    return submit_body(
        ctx.services,
        principal.account_id,
        args,
        _provenance(ctx, args.provenance),
        ctx.headers.get("idempotency-key"),
    )


@tool(
    "list_releases",
    "The account's most recent releases (limit 1-100, default 100), newest first.",
    input=ListInput,
    output=ListOutput,
    read_only=True,
)
def list_releases(ctx: ToolContext, args: ListInput) -> ListOutput:
    principal = ctx.require_principal()
    return list_body(ctx.services, principal.account_id, args.limit)


@tool(
    "get_release_metadata",
    "Merged metadata of a release: the draft snapshot, or the latest submitted data.",
    input=ReleaseIdInput,
    output=MetadataOutput,
    read_only=True,
)
def get_release_metadata(ctx: ToolContext, args: ReleaseIdInput) -> MetadataOutput:
    principal = ctx.require_principal()
    return metadata_body(ctx.services, principal.account_id, args.releaseId)


@tool(
    "get_release_status",
    "Delivery status of a release: per store and aggregate (queued, delivering, "
    "delivered, live, failed; taken_down after a takedown), with its jobs.",
    input=ReleaseIdInput,
    output=StatusOutput,
    read_only=True,
)
def get_release_status(ctx: ToolContext, args: ReleaseIdInput) -> StatusOutput:
    principal = ctx.require_principal()
    return status_body(ctx.services, principal.account_id, args.releaseId)


@tool(
    "get_job_status",
    "Processing status of a release delivery job (per store) and its errors.",
    input=JobIdInput,
    output=JobOutput,
    read_only=True,
)
def get_job_status(ctx: ToolContext, args: JobIdInput) -> JobOutput:
    principal = ctx.require_principal()
    return job_body(ctx.services, principal.account_id, args.jobId)


@tool(
    "get_draft_history",
    "Every saved snapshot of a release draft, oldest first.",
    input=ReleaseIdInput,
    output=DraftHistoryOutput,
    read_only=True,
)
def get_draft_history(ctx: ToolContext, args: ReleaseIdInput) -> DraftHistoryOutput:
    principal = ctx.require_principal()
    return history_body(ctx.services, principal.account_id, args.releaseId)


@tool(
    "update_release_metadata",
    "Change a submitted release's metadata (titles, artist, genre, date, cover, writers, "
    "explicit flags; not the UPC, ISRCs, audio or track list) and deliver it again to "
    "every store. No credits.",
    input=UpdateInput,
    output=JobStarted,
)
def update_release_metadata(ctx: ToolContext, args: UpdateInput) -> JobStarted:
    principal = ctx.require_principal()
    return update_body(ctx.services, principal.account_id, args, _provenance(ctx, args.provenance))


@tool(
    "takedown_release",
    "Take a submitted release down from every store (a new delivery job). No credits.",
    input=TakedownInput,
    output=JobStarted,
)
def takedown_release(ctx: ToolContext, args: TakedownInput) -> JobStarted:
    principal = ctx.require_principal()
    return takedown_body(
        ctx.services, principal.account_id, args, _provenance(ctx, args.provenance)
    )
