"""Release status read model: releases, per-store delivery status, jobs, token offsets.

``releases``               one row per release: merged metadata (draft or latest
                           submitted), state, aggregate delivery status, cost,
                           ``mcp_provenance`` (analytics only), latest job.
``release_stores``         per (release, store): the latest job's status at that store.
``release_jobs``           one row per ProcessingJob: status, error, per-store detail and
                           ``next_check_at`` (epoch ms) so delivery workers find due jobs.
``release_token_offsets``  the seed's ``release_token_offsets``: one row per release that
                           opted in (credits, the ledger ref ``token_offset:<id>``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from backline.domain.delivery import ACTIVE_JOB_STATES, FINAL_STORE_STATES, job_status
from backline.domain.delivery import ProcessingJob as Job
from backline.domain.releases import Release
from backline.projections.db import Column, Index, ReadStore, Table
from backline.projections.framework import Batch, Projection, handles

RELEASES = Table(
    name="releases",
    columns=(
        Column("release_id", "text", nullable=False),
        Column("account_id", "text", nullable=False),
        Column("conversation_id", "text"),
        Column("state", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("title", "text"),
        Column("primary_artist_name", "text"),
        Column("genre", "text"),
        Column("release_date", "text"),
        Column("upc", "text"),
        Column("track_count", "int", nullable=False),
        Column("credits_charged", "int", nullable=False),
        Column("token_offset", "bool", nullable=False),
        Column("ai_tracks", "int", nullable=False),
        Column("mcp_provenance", "text"),
        Column("latest_job_id", "text"),
        Column("draft_count", "int", nullable=False),
        Column("draft_status", "text"),
        Column("metadata", "json"),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
        Column("submitted_at", "timestamp"),
    ),
    primary_key=("release_id",),
    indexes=(Index("releases_by_account", ("account_id", "created_at")),),
)

STORES = Table(
    name="release_stores",
    columns=(
        Column("release_id", "text", nullable=False),
        Column("store", "text", nullable=False),
        Column("job_id", "text", nullable=False),
        Column("kind", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("attempts", "int", nullable=False),
        Column("error", "text"),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("release_id", "store"),
)

JOBS = Table(
    name="release_jobs",
    columns=(
        Column("job_id", "text", nullable=False),
        Column("release_id", "text", nullable=False),
        Column("account_id", "text", nullable=False),
        Column("kind", "text", nullable=False),
        Column("status", "text", nullable=False),
        Column("error", "text"),
        Column("stores", "json"),
        Column("refunded", "int", nullable=False),
        Column("next_check_at", "int", nullable=False),
        Column("created_at", "timestamp"),
        Column("updated_at", "timestamp"),
    ),
    primary_key=("job_id",),
    indexes=(Index("release_jobs_due", ("status", "next_check_at")),),
)

TOKEN_OFFSETS = Table(
    name="release_token_offsets",
    columns=(
        Column("release_id", "text", nullable=False),
        Column("account_id", "text", nullable=False),
        Column("credits", "int", nullable=False),
        Column("ref", "text", nullable=False),
        Column("created_at", "timestamp"),
    ),
    primary_key=("release_id",),
    indexes=(Index("token_offsets_by_account", ("account_id",)),),
)


def _ms(at: datetime | None) -> int:
    return int(at.timestamp() * 1000) if at is not None else 0


def _iso(at: Any) -> str | None:
    return at.isoformat() if isinstance(at, datetime) else None


class ReleaseStatusProjection(Projection):
    name = "release_status"
    version = 1
    tables = (RELEASES, STORES, JOBS, TOKEN_OFFSETS)

    # -- releases ---------------------------------------------------------------------------

    @handles(Release.Started)
    def started(self, batch: Batch, e: Any) -> None:
        batch.put(
            "releases",
            {
                "release_id": str(e.originator_id),
                "account_id": str(e.owner_id),
                "conversation_id": e.conversation_id,
                "state": "draft",
                "status": "draft",
                "title": None,
                "primary_artist_name": None,
                "genre": None,
                "release_date": None,
                "upc": None,
                "track_count": 0,
                "credits_charged": 0,
                "token_offset": False,
                "ai_tracks": 0,
                "mcp_provenance": e.provenance,
                "latest_job_id": None,
                "draft_count": 0,
                "draft_status": None,
                "metadata": {"release": {}, "tracks": []},
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
                "submitted_at": None,
            },
        )

    @handles(Release.DraftSaved)
    def draft_saved(self, batch: Batch, e: Any) -> None:
        rel = e.release
        batch.patch(
            "releases",
            str(e.originator_id),
            title=_str(rel.get("title")),
            primary_artist_name=_str(rel.get("primary_artist_name")),
            genre=_str(rel.get("genre")),
            release_date=_str(rel.get("release_date")),
            track_count=len(e.tracks),
            draft_count=e.originator_version - 1,
            draft_status=e.status,
            metadata={
                "release": rel,
                "tracks": e.tracks,
                "uploadRequests": e.upload_requests,
                "status": e.status,
            },
            updated_at=e.timestamp,
        )

    def _metadata(self, batch: Batch, e: Any, **extra: Any) -> None:
        m = e.metadata
        batch.patch(
            "releases",
            str(e.originator_id),
            title=m.get("title"),
            primary_artist_name=m.get("primary_artist_name"),
            genre=m.get("genre"),
            release_date=m.get("release_date"),
            upc=m.get("upc"),
            track_count=len(e.tracks),
            metadata={"release": m, "tracks": e.tracks},
            latest_job_id=str(e.job_id),
            status="queued",
            updated_at=e.timestamp,
            **extra,
        )

    @handles(Release.Submitted)
    def submitted(self, batch: Batch, e: Any) -> None:
        self._metadata(
            batch,
            e,
            state="submitted",
            credits_charged=e.cost,
            token_offset=e.token_offset,
            ai_tracks=e.ai_tracks,
            mcp_provenance=e.provenance,
            submitted_at=e.timestamp,
        )
        row = batch.get("releases", str(e.originator_id))
        if e.token_offset and row is not None:
            batch.put(
                "release_token_offsets",
                {
                    "release_id": str(e.originator_id),
                    "account_id": row["account_id"],
                    "credits": e.token_offset_credits,
                    "ref": f"token_offset:{e.originator_id}",
                    "created_at": e.timestamp,
                },
            )

    @handles(Release.MetadataUpdated)
    def metadata_updated(self, batch: Batch, e: Any) -> None:
        self._metadata(batch, e)

    @handles(Release.TakedownRequested)
    def takedown(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "releases",
            str(e.originator_id),
            state="taken_down",
            status="takedown_queued",
            latest_job_id=str(e.job_id),
            updated_at=e.timestamp,
        )

    # -- jobs ----------------------------------------------------------------------------------

    @handles(Job.Queued)
    def job_queued(self, batch: Batch, e: Any) -> None:
        stores = {
            s: {"status": "queued", "attempts": 0, "error": None, "updatedAt": _iso(e.timestamp)}
            for s in e.stores
        }
        job_id = str(e.originator_id)
        batch.put(
            "release_jobs",
            {
                "job_id": job_id,
                "release_id": str(e.release_id),
                "account_id": str(e.owner_id),
                "kind": e.kind,
                "status": "queued",
                "error": None,
                "stores": stores,
                "refunded": 0,
                "next_check_at": 0,
                "created_at": e.timestamp,
                "updated_at": e.timestamp,
            },
        )
        for s in e.stores:
            batch.put(
                "release_stores",
                {
                    "release_id": str(e.release_id),
                    "store": s,
                    "job_id": job_id,
                    "kind": e.kind,
                    "status": "queued",
                    "attempts": 0,
                    "error": None,
                    "updated_at": e.timestamp,
                },
            )

    def _store_change(
        self,
        batch: Batch,
        e: Any,
        store: str,
        *,
        next_check: datetime | None = None,
        **changes: Any,
    ) -> None:
        job_id = str(e.originator_id)
        job = batch.get("release_jobs", job_id)
        if job is None:
            return
        stores = job["stores"]
        entry = stores.setdefault(store, {"status": "queued", "attempts": 0, "error": None})
        entry.update(changes)
        entry["updatedAt"] = _iso(e.timestamp)
        status = job_status(stores, job["kind"])
        failed = [f"{s}: {v.get('error')}" for s, v in stores.items() if v["status"] == "failed"]
        if next_check is not None:
            entry["retryAtMs"] = _ms(next_check)
        elif "status" in changes:
            entry["retryAtMs"] = 0
        pending = [
            int(v.get("retryAtMs") or 0)
            for v in stores.values()
            if v["status"] not in FINAL_STORE_STATES
        ]
        batch.put(
            "release_jobs",
            {
                **job,
                "stores": stores,
                "status": status,
                "error": "; ".join(failed) if failed else None,
                "next_check_at": min(pending) if pending else 0,
                "updated_at": e.timestamp,
            },
        )
        release_id = job["release_id"]
        release = batch.get("releases", release_id)
        if release is None or release["latest_job_id"] != job_id:
            return
        row = batch.get("release_stores", release_id, store)
        if row is not None:
            row.update(
                status=entry["status"],
                attempts=int(entry.get("attempts") or 0),
                error=entry.get("error"),
                updated_at=e.timestamp,
            )
            batch.put("release_stores", row)
        aggregate = status
        if job["kind"] == "release_takedown":
            aggregate = "taken_down" if status == "taken_down" else f"takedown_{status}"
        batch.patch("releases", release_id, status=aggregate, updated_at=e.timestamp)

    @handles(Job.DeliveryStarted)
    def delivery_started(self, batch: Batch, e: Any) -> None:
        self._store_change(batch, e, e.store, status="delivering", attempts=e.attempt, error=None)

    @handles(Job.StoreDelivered)
    def store_delivered(self, batch: Batch, e: Any) -> None:
        self._store_change(
            batch, e, e.store, next_check=e.check_at, status="delivered", receipt=e.receipt
        )

    @handles(Job.StoreWentLive)
    def store_live(self, batch: Batch, e: Any) -> None:
        self._store_change(batch, e, e.store, status=e.status)

    @handles(Job.StoreCheckDeferred)
    def check_deferred(self, batch: Batch, e: Any) -> None:
        self._store_change(batch, e, e.store, next_check=e.check_at)

    @handles(Job.AttemptFailed)
    def attempt_failed(self, batch: Batch, e: Any) -> None:
        self._store_change(
            batch,
            e,
            e.store,
            next_check=e.retry_at,
            status="queued" if e.retry_at is not None else "failed",
            attempts=e.attempt,
            error=e.reason,
        )

    @handles(Job.Refunded)
    def refunded(self, batch: Batch, e: Any) -> None:
        batch.patch(
            "release_jobs", str(e.originator_id), refunded=e.credits, updated_at=e.timestamp
        )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


class ReleaseQueries:
    def __init__(self, read: ReadStore) -> None:
        self.read = read

    def list_releases(self, account_id: UUID, limit: int) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                RELEASES,
                "account_id = ?",
                (str(account_id), limit),
                tail="ORDER BY created_at DESC, release_id DESC LIMIT ?",
            )

    def release(self, account_id: UUID, release_id: UUID) -> dict[str, Any] | None:
        with self.read.read() as tx:
            row = tx.get_row(RELEASES, (str(release_id),))
        if row is None or row["account_id"] != str(account_id):
            return None
        return row

    def stores(self, release_id: UUID) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                STORES, "release_id = ?", (str(release_id),), tail="ORDER BY store"
            )

    def job(self, account_id: UUID, job_id: UUID) -> dict[str, Any] | None:
        with self.read.read() as tx:
            row = tx.get_row(JOBS, (str(job_id),))
        if row is None or row["account_id"] != str(account_id):
            return None
        return row

    def job_by_id(self, job_id: UUID) -> dict[str, Any] | None:
        with self.read.read() as tx:
            return tx.get_row(JOBS, (str(job_id),))

    def jobs_of(self, release_id: UUID) -> list[dict[str, Any]]:
        with self.read.read() as tx:
            return tx.select_rows(
                JOBS, "release_id = ?", (str(release_id),), tail="ORDER BY created_at"
            )

    def token_offset(self, release_id: UUID) -> dict[str, Any] | None:
        with self.read.read() as tx:
            return tx.get_row(TOKEN_OFFSETS, (str(release_id),))

    def due_jobs(self, now: datetime, limit: int) -> list[UUID]:
        marks = ", ".join("?" for _ in ACTIVE_JOB_STATES)
        with self.read.read() as tx:
            rows = tx.fetchall(
                f"SELECT job_id FROM release_jobs WHERE status IN ({marks}) "
                "AND next_check_at <= ? ORDER BY next_check_at, created_at LIMIT ?",
                (*ACTIVE_JOB_STATES, _ms(now), limit),
            )
        return [UUID(r[0]) for r in rows]
