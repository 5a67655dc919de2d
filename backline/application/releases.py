"""Release use cases: drafts, submission billed in credits, metadata update, takedown.

Submission is one load-decide-save: the Release, the account's CreditLedger (the
release debit ``release:<id>`` and, with ``tokenOffset``, the separate
``token_offset:<id>`` debit), the first ProcessingJob, the conversation and
Idempotency-Key indexes and the ISRC/UPC claims and sequences are saved by ONE
``store.save_all`` call: no release without its debit, no debit without its release.
A version race (two submissions at once) makes one of them retry, and the retry finds
the release submitted and answers the first result without charging again.

Cost = Σ tracks (1 credit per human song, 2 per AI-detected song by ``detect_audio_ai``;
detection runs first for audio never checked) + 1 with ``tokenOffset``. Provenance is
recorded on the release for analytics only (seed 000).
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, BinaryIO, Protocol, TypeVar, cast
from uuid import UUID, uuid4

import structlog
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent

from backline.application.credits import CreditService
from backline.application.ports import Clock, SystemClock
from backline.application.store import EventStore, retrying
from backline.domain.credits import CreditLedger, ledger_id
from backline.domain.delivery import (
    RELEASE_DELIVERY,
    RELEASE_TAKEDOWN,
    RELEASE_UPDATE,
    ProcessingJob,
)
from backline.domain.errors import Conflict, NotFound, ValidationFailed
from backline.domain.identifiers import (
    DEFAULT_SHARDS,
    DESIGNATION_SPACE,
    IdentifierClaim,
    IdentifierSequence,
    SequenceExhausted,
    claim_id,
    make_isrc,
    make_upc,
    sequence_id,
    upc_capacity,
)
from backline.domain.pricing import TOKEN_OFFSET_CREDITS, release_cost
from backline.domain.releases import (
    ConversationIndex,
    Draft,
    FileFacts,
    IdempotencyIndex,
    Release,
    ValidatedRelease,
    conversation_index_id,
    idempotency_index_id,
    merge_draft,
    urls_of,
    validate_submission,
)

log = structlog.get_logger(__name__)

MAX_ID_LENGTH = 200


class ReleaseFiles(Protocol):
    """What releases need from uploads (issue 4): file facts, AI detection, bytes."""

    def facts(self, account_id: UUID, url: str) -> FileFacts | None:
        """The caller's file at ``url`` (None when missing or someone else's)."""
        ...

    def ensure_detected(
        self, account_id: UUID, url: str, *, release_id: UUID, track_index: int
    ) -> FileFacts | None:
        """Facts after running AI detection if it never ran for this file."""
        ...

    def facts_many(
        self, account_id: UUID, urls: Sequence[str], also: Sequence[UUID] = ()
    ) -> tuple[dict[str, FileFacts | None], dict[UUID, Any]]:
        """Facts of several files, and the aggregates ``also`` names, in one read."""
        ...

    def open(self, owner_id: UUID, url: str) -> BinaryIO:
        """Read the stored bytes (for delivery)."""
        ...


@dataclass(frozen=True)
class ReleasePolicy:
    isrc_prefix: str = "ZZBLN"
    upc_prefix: str = "020000"
    stores: tuple[str, ...] = ("spotify", "apple_music", "amazon_music")
    max_attempts: int = 5
    shards: int = DEFAULT_SHARDS
    submit_rate_limit: str = "10 per 60 seconds"
    block_size: int = 100


@dataclass
class _Lease:
    """Numbers one submission attempt took from the blocks."""

    careful: bool = False
    taken: list[tuple[str, str, int]] = field(default_factory=list)
    burnt: list[tuple[str, str, int]] = field(default_factory=list)


class IdentifierBlocks:
    """Per-process blocks of identifier numbers reserved from the sharded sequences.

    Reserving a block is one ``Taken`` event on one shard (its own small transaction),
    so submissions do not all write the same sequence aggregate; the shard is picked at
    random, so processes rarely race for one. A number handed out and not used (the
    submission failed) goes back to the pool; numbers of a block left when the process
    stops are never used (a gap, as ISRC and UPC allow).
    """

    def __init__(self, store: EventStore, shards: int, block_size: int) -> None:
        self.store = store
        self.shards = shards
        self.block_size = max(1, block_size)
        self._pools: dict[tuple[str, str], deque[int]] = {}
        self._lock = threading.Lock()

    def take(self, kind: str, scope: str, capacity: int) -> int:
        with self._lock:
            pool = self._pools.setdefault((kind, scope), deque())
            if not pool:
                pool.extend(self._reserve(kind, scope, capacity))
            return pool.popleft()

    def give_back(self, lease: _Lease) -> None:
        burnt = set(lease.burnt)
        with self._lock:
            for kind, scope, n in reversed(lease.taken):
                if (kind, scope, n) not in burnt:
                    self._pools.setdefault((kind, scope), deque()).appendleft(n)
        lease.taken.clear()

    def _reserve(self, kind: str, scope: str, capacity: int) -> list[int]:
        shards = list(range(self.shards))
        random.shuffle(shards)
        for shard in shards:

            def attempt(shard: int = shard) -> list[int]:
                seq = self.store.find(sequence_id(kind, scope, shard), IdentifierSequence)
                if seq is None:
                    seq = IdentifierSequence(
                        kind=kind, scope=scope, shard=shard, shards=self.shards, capacity=capacity
                    )
                numbers = []
                for k in range(self.block_size):
                    n = seq.peek(k)
                    if n is None:
                        break
                    numbers.append(n)
                if not numbers:
                    return []
                seq.take(len(numbers))
                self.store.save_all(seq)
                return numbers

            found = retrying(attempt, attempts=20)
            if found:
                return found
        raise SequenceExhausted(f"No {kind} numbers are left for {scope}.", kind=kind)


class ReleaseInsufficientCredits(Conflict):
    """The balance does not cover the release: cost, balance and how to buy."""

    code = "insufficient_credits"


@dataclass(frozen=True)
class DraftResult:
    release_id: UUID
    draft: Draft
    draft_version: int
    position: int
    created: bool


@dataclass(frozen=True)
class SubmitResult:
    release_id: UUID
    job_id: UUID
    credits_charged: int
    track_credits: int
    token_offset_credits: int
    new_balance: int
    ai_tracks: int
    human_tracks: int
    upc: str
    isrcs: list[str]
    replayed: bool
    position: int
    status: str = "queued"


@dataclass(frozen=True)
class JobResult:
    release_id: UUID
    job_id: UUID
    kind: str
    position: int


@dataclass
class _Identifiers:
    aggregates: list[Any] = field(default_factory=list)


A = TypeVar("A", bound=Aggregate)


def load_fresh(store: EventStore, aggregate_id: UUID, cls: type[A]) -> A | None:
    """Replay a small aggregate straight from its events (no repository cache).

    The repository's cache deep-copies every aggregate it hands out; for the small,
    rarely-changing aggregates read on the submission path (indexes, claims, stored
    files) decoding their few events is several times cheaper than that copy.
    """
    aggregate: Any = None
    for e in store.repository.event_store.get(aggregate_id):
        aggregate = cast(Any, e).mutate(aggregate)
    return aggregate if isinstance(aggregate, cls) else None


class SettledCache:
    """Per-process copies of small aggregates of the given types, kept fresh by readers.

    For aggregates read on every submission that rarely gain an event (stored files):
    :func:`load_fresh_many` reads only the events recorded after the cached version (in
    the same single query), so an unchanged aggregate is not decoded again, and a
    changed one is brought up to date (by any process's events) before it is returned.
    Aggregates handed out are shared: callers only read them.
    """

    def __init__(self, types: tuple[type[Aggregate], ...], maxsize: int = 4096) -> None:
        self.types = types
        self.maxsize = maxsize
        self._items: OrderedDict[UUID, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, aggregate_id: UUID) -> Any | None:
        with self._lock:
            return self._items.get(aggregate_id)

    def put(self, aggregate: Any) -> None:
        if not isinstance(aggregate, self.types) or aggregate.pending_events:
            return
        with self._lock:
            current = self._items.get(aggregate.id)
            if current is None or current.version < aggregate.version:
                self._items[aggregate.id] = aggregate
                self._items.move_to_end(aggregate.id)
                while len(self._items) > self.maxsize:
                    self._items.popitem(last=False)


def load_fresh_many(
    store: EventStore, ids: Sequence[UUID], cache: SettledCache | None = None
) -> dict[UUID, Any]:
    """Replay several small aggregates at once (one query on PostgreSQL).

    With ``cache``, aggregates of its types start from their cached copy and only the
    events recorded since are read and applied (in the same query).
    """
    unique = list(dict.fromkeys(ids))
    rows: list[StoredEvent] | None = None
    known: dict[UUID, Any] = {}
    if len(unique) > 1 and store.supports_bulk_select:
        if cache is not None:
            for aggregate_id in unique:
                found = cache.get(aggregate_id)
                if found is not None:
                    known[aggregate_id] = found
        rows = store.select_events_after(
            unique, [known[i].version if i in known else 0 for i in unique]
        )
    out: dict[UUID, Any] = {}
    if rows is None:
        for aggregate_id in unique:
            found = load_fresh(store, aggregate_id, Aggregate)
            if found is not None:
                out[aggregate_id] = found
        return out
    out.update(known)
    changed: set[UUID] = set()
    mapper = store.mapper
    for row in rows:
        event = mapper.to_domain_event(row)
        key = event.originator_id
        current = out.get(key)
        if key in known and key not in changed:
            current = deepcopy(current)  # the cached copy is shared: never mutate it
        changed.add(key)
        out[key] = cast(Any, event).mutate(current)
    if cache is not None:
        for key in changed:
            cache.put(out[key])
    return out


def _clean_id(value: object, field_name: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH or not value.strip():
        raise ValidationFailed(
            f"{field_name} must be a string of at most {MAX_ID_LENGTH} characters.",
            code="invalid_field",
            field=field_name,
        )
    return value.strip()


def parse_release_id(value: object, field_name: str = "releaseId") -> UUID | None:
    text = _clean_id(value, field_name)
    if text is None:
        return None
    try:
        return UUID(text)
    except ValueError:
        raise NotFound("Release not found.", code="release_not_found") from None


class ReleaseService:
    def __init__(
        self,
        store: EventStore,
        credits: CreditService,
        files: ReleaseFiles,
        policy: ReleasePolicy | None = None,
        clock: Clock | None = None,
        reload: Callable[[UUID, int], str] | None = None,
        reload_enabled: Callable[[UUID], bool] | None = None,
    ) -> None:
        self.store = store
        self.credits = credits
        self.files = files
        self.policy = policy or ReleasePolicy()
        self.clock = clock or SystemClock()
        self.reload = reload
        self.reload_enabled = reload_enabled
        self.blocks = IdentifierBlocks(store, self.policy.shards, self.policy.block_size)

    # -- loading ----------------------------------------------------------------------------

    def get_owned(self, account_id: UUID, release_id: UUID) -> Release:
        release = self.store.get(release_id, Release, what="release")
        release.ensure_owner(account_id)
        return release

    def get_job(self, account_id: UUID, job_id: UUID) -> ProcessingJob:
        job = self.store.get(job_id, ProcessingJob, what="job")
        job.ensure_owner(account_id)
        return job

    def _by_conversation(self, account_id: UUID, conversation_id: str) -> Release | None:
        index = load_fresh(
            self.store, conversation_index_id(account_id, conversation_id), ConversationIndex
        )
        if index is None:
            return None
        return self.store.find(index.release_id, Release)

    def _locate(
        self,
        account_id: UUID,
        release_id: UUID | None,
        conversation_id: str | None,
        provenance: str,
        prefetched: dict[UUID, Any] | None = None,
    ) -> tuple[Release, list[Any]]:
        """The release addressed (or a new one) and the new index aggregates to save."""
        if release_id is not None:
            return self.get_owned(account_id, release_id), []
        if conversation_id is not None:
            index_id = conversation_index_id(account_id, conversation_id)
            if prefetched is not None and index_id in prefetched:
                index = prefetched[index_id]
                found = (
                    self.store.find(index.release_id, Release)
                    if isinstance(index, ConversationIndex)
                    else None
                )
            else:
                found = self._by_conversation(account_id, conversation_id)
            if found is not None:
                return found, []
            release = Release(
                owner_id=account_id, conversation_id=conversation_id, provenance=provenance
            )
            index = ConversationIndex(
                owner_id=account_id, conversation_id=conversation_id, release_id=release.id
            )
            return release, [index]
        return Release(owner_id=account_id, conversation_id=None, provenance=provenance), []

    # -- drafts -----------------------------------------------------------------------------

    def save_draft(
        self,
        account_id: UUID,
        body: Mapping[str, Any],
        *,
        provenance: str = "MCP",
    ) -> DraftResult:
        release_id = parse_release_id(body.get("releaseId"))
        conversation_id = _clean_id(body.get("conversationId"), "conversationId")
        mode = body.get("mode") or "delta"
        if not isinstance(mode, str):
            raise ValidationFailed("mode must be a string.", code="invalid_mode", field="mode")
        change = {
            k: body[k]
            for k in ("release", "tracks", "trackPatches", "uploadRequests", "status")
            if body.get(k) is not None
        }

        def attempt() -> DraftResult:
            release, indexes = self._locate(account_id, release_id, conversation_id, provenance)
            created = release.version == 1 and bool(release.pending_events)
            draft = release.save_draft(change, mode=mode)
            position = self.store.save_all(release, *indexes)
            return DraftResult(release.id, draft, release.draft_count, position, created)

        return retrying(attempt)

    def with_detections(
        self, account_id: UUID, tracks: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Draft tracks with the AI-detection result of their audio written in.

        ``detect_audio_ai`` records its result on the uploaded file (with the ``trackIndex``
        it was given); a draft track shows the result of the file it points to, whatever
        order the agent uploaded, detected and drafted in.
        """
        urls = [str(t["audio_file_url"]) for t in tracks if t.get("audio_file_url")]
        facts, _ = self.files.facts_many(account_id, urls) if urls else ({}, {})
        out: list[dict[str, Any]] = []
        for t in tracks:
            track = dict(t)
            f = facts.get(str(t.get("audio_file_url") or ""))
            if f is not None and f.kind == "audio" and f.detection_status is not None:
                track["aiDetection"] = {
                    "status": f.detection_status,
                    "containsAi": f.contains_ai,
                    "predictedModel": f.predicted_model,
                    "provider": f.detection_provider,
                    "model": f.detection_model,
                }
            out.append(track)
        return out

    def draft_history(self, account_id: UUID, release_id: UUID) -> list[dict[str, Any]]:
        """Every saved snapshot of a draft, oldest first (read from the events)."""
        self.get_owned(account_id, release_id)
        out: list[dict[str, Any]] = []
        for e in self.store.events.get(release_id):
            if isinstance(e, Release.DraftSaved):
                out.append(
                    {
                        "version": len(out) + 1,
                        "mode": e.mode,
                        "savedAt": e.timestamp.isoformat(),
                        "change": e.change,
                        "release": e.release,
                        "tracks": e.tracks,
                        "uploadRequests": e.upload_requests,
                        "status": e.status,
                    }
                )
        return out

    # -- submission ---------------------------------------------------------------------------

    def _replay(self, release: Release, position: int = 0) -> SubmitResult:
        sub = release.submission
        assert sub is not None
        assert release.metadata is not None
        return SubmitResult(
            release_id=release.id,
            job_id=sub["job_id"],
            credits_charged=int(sub["cost"]),
            track_credits=int(sub["track_credits"]),
            token_offset_credits=int(sub["token_offset_credits"]),
            new_balance=int(sub["balance_after"]),
            ai_tracks=int(sub["ai_tracks"]),
            human_tracks=int(sub["human_tracks"]),
            upc=str(release.metadata.get("upc")),
            isrcs=[str(t.get("isrc")) for t in release.tracks],
            replayed=position == 0,
            position=position,
        )

    def _file_facts(
        self,
        account_id: UUID,
        refs: Sequence[tuple[str, str, str]],
        release_id: UUID,
        cache: dict[str, FileFacts | None],
        prefetched: Mapping[str, FileFacts | None] | None = None,
    ) -> dict[str, FileFacts | None]:
        for field_name, kind, url in refs:
            if url in cache:
                continue
            if prefetched is not None and url in prefetched:
                facts = prefetched[url]
            else:
                facts = self.files.facts(account_id, url)
            if (
                facts is not None
                and kind == "audio"
                and facts.kind == "audio"
                and facts.contains_ai is None
                and facts.detection_status not in ("ok", "too_large")
            ):
                index = int(field_name.split("[", 1)[1].split("]", 1)[0])
                facts = self.files.ensure_detected(
                    account_id, url, release_id=release_id, track_index=index
                )
            cache[url] = facts
        return cache

    def _today(self) -> date:
        return self.clock.now().date()

    def submit(
        self,
        account_id: UUID,
        body: Mapping[str, Any],
        *,
        provenance: str = "MCP",
        idempotency_key: str | None = None,
    ) -> SubmitResult:
        release_id = parse_release_id(body.get("releaseId"))
        conversation_id = _clean_id(body.get("conversationId"), "conversationId")
        key = _clean_id(idempotency_key, "Idempotency-Key")
        token_offset = body.get("tokenOffset", False)
        if token_offset is None:
            token_offset = False
        if not isinstance(token_offset, bool):
            raise ValidationFailed(
                "tokenOffset must be true or false.", code="invalid_field", field="tokenOffset"
            )
        release_delta = body.get("release")
        tracks_delta = body.get("tracks")
        cache: dict[str, FileFacts | None] = {}

        key_index_id = idempotency_index_id(account_id, key) if key is not None else None
        conv_index_id = (
            conversation_index_id(account_id, conversation_id)
            if conversation_id is not None and release_id is None
            else None
        )
        body_urls = [
            url
            for _, _, url in urls_of(
                release_delta if isinstance(release_delta, dict) else {},
                [t for t in tracks_delta if isinstance(t, dict)]
                if isinstance(tracks_delta, list)
                else [],
            )
        ]

        def replayed_by_key(prefetched: dict[UUID, Any]) -> Release | None:
            if key_index_id is None:
                return None
            index = prefetched.get(key_index_id)
            if not isinstance(index, IdempotencyIndex):
                return None
            return self.store.find(index.release_id, Release)

        attempts = 0

        def attempt() -> SubmitResult:
            nonlocal attempts
            attempts += 1
            # One read for the indexes and the files the body names (facts are cached
            # across retries: a stored file only ever gains its AI detection).
            also = [i for i in (key_index_id, conv_index_id) if i is not None]
            todo = [u for u in body_urls if u not in cache]
            prefetched_files, prefetched = self.files.facts_many(account_id, todo, also)
            earlier = replayed_by_key(prefetched)
            if earlier is not None and earlier.submitted:
                return self._replay(earlier)
            release, indexes = self._locate(
                account_id, release_id, conversation_id, provenance, prefetched
            )
            if release.submitted:
                return self._replay(release)
            merged = merge_draft(
                release.draft, mode="delta", release=release_delta, tracks=tracks_delta
            )
            refs = urls_of(merged.release, merged.tracks)
            files = self._file_facts(account_id, refs, release.id, cache, prefetched_files)
            validated = validate_submission(
                merged.release,
                merged.tracks,
                owner_id=account_id,
                today=self._today(),
                files=files,
            )
            lease = _Lease(careful=attempts > 1)
            identifiers = self._identify(account_id, release.id, validated, lease)
            ai = sum(1 for t in validated.tracks if t.get("ai_detected"))
            track_credits = release_cost(len(validated.tracks) - ai, ai)
            offset = TOKEN_OFFSET_CREDITS if token_offset else 0
            # The first attempt decides on the cached ledger without reading it back: a
            # stale one makes the save collide and the retry reads it fresh. A refusal
            # for lack of credits is only given on fresh state.
            first = attempts == 1
            ledger = self.credits.load_ledger(account_id, trust_cache=first)
            total = track_credits + offset
            if ledger.balance < total and first:
                ledger = self.credits.load_ledger(account_id)
            if ledger.balance < total:
                self.blocks.give_back(lease)
                raise self._insufficient(account_id, total, ledger.balance, track_credits, offset)
            details = {
                "release_id": str(release.id),
                "tracks": str(len(validated.tracks)),
                "ai_tracks": str(ai),
                "provenance": provenance,
            }
            ledger.debit(track_credits, f"release:{release.id}", details=details)
            if offset:
                ledger.debit(
                    offset,
                    f"token_offset:{release.id}",
                    details={"release_id": str(release.id), "kind": "token_offset"},
                )
            job = ProcessingJob(
                kind=RELEASE_DELIVERY,
                release_id=release.id,
                owner_id=account_id,
                release_version=release.version + 1,
                stores=list(self.policy.stores),
                max_attempts=self.policy.max_attempts,
            )
            release.submit(
                validated,
                track_credits=track_credits,
                token_offset_credits=offset,
                provenance=provenance,
                idempotency_key=key,
                job_id=job.id,
                balance_after=ledger.balance,
                stores=list(self.policy.stores),
            )
            if key is not None and earlier is None:
                indexes.append(
                    IdempotencyIndex(owner_id=account_id, key=key, release_id=release.id)
                )
            try:
                position = self.store.save_all(release, ledger, job, *indexes, *identifiers)
            except BaseException:
                self.blocks.give_back(lease)  # unused numbers serve the next submission
                raise
            self.credits.remember(ledger)
            log.info(
                "release_submitted",
                release_id=str(release.id),
                job_id=str(job.id),
                cost=total,
                ai_tracks=ai,
                provenance=provenance,
            )
            return self._replay(release, position)

        outcome: str | None = None
        while True:
            try:
                return self.credits.retry(account_id, attempt)
            except ReleaseInsufficientCredits as e:
                if outcome is not None:  # reloaded once already and still short
                    e.details["autoReload"] = {
                        "enabled": True,
                        "attempted": True,
                        "outcome": outcome,
                    }
                    raise
                if self.reload is None or not self._reload_enabled(account_id):
                    raise
                outcome = self.reload(account_id, int(e.details["cost"]))
                log.info("release_autoreload", account_id=str(account_id), outcome=outcome)
                if outcome != "succeeded":
                    e.details["autoReload"] = {
                        "enabled": True,
                        "attempted": True,
                        "outcome": outcome,
                    }
                    raise

    def _reload_enabled(self, account_id: UUID) -> bool:
        return self.reload_enabled is not None and self.reload_enabled(account_id)

    def _insufficient(
        self, account_id: UUID, cost: int, balance: int, track_credits: int, offset: int
    ) -> ReleaseInsufficientCredits:
        enabled = self._reload_enabled(account_id)
        return ReleaseInsufficientCredits(
            f"Not enough credits: this release costs {cost} and the balance is {balance}.",
            cost=cost,
            balance=balance,
            needed=cost,
            available=balance,
            shortfall=cost - balance,
            breakdown={"tracks": track_credits, "tokenOffset": offset},
            howToBuy={
                "checkout": "Call create_credit_checkout_session with credits (1-1000, $1 "
                "each) or a packageId from get_pricing, pay, then submit again.",
                "autoReload": "Save a card (savePaymentMethod: true) and call set_autoreload "
                '{"enabled": true, "packageId": "credits_100"} so the balance tops up '
                "before submissions.",
                "pricing": "get_pricing lists the bundles.",
            },
            autoReload={"enabled": enabled, "attempted": False},
        )

    # -- identifiers --------------------------------------------------------------------------

    def _identify(
        self,
        account_id: UUID,
        release_id: UUID,
        validated: ValidatedRelease,
        lease: _Lease,
    ) -> list[Any]:
        """Claim given identifiers, assign missing ones; returns aggregates to save.

        Assigned numbers come from in-memory blocks reserved from the sequences (see
        :class:`IdentifierBlocks`); the claims saved with the release are what make them
        unique. A number someone claimed by giving it explicitly makes the save fail;
        the retry runs ``careful`` and skips claimed numbers.
        """
        out: list[Any] = []
        claimed: set[UUID] = set()

        def claim(kind: str, value: str, assigned: bool) -> None:
            claimed.add(claim_id(kind, value))
            out.append(
                IdentifierClaim(
                    kind=kind,
                    value=value,
                    owner_id=account_id,
                    release_id=release_id,
                    assigned=assigned,
                )
            )

        def claim_given(kind: str, value: str, field_name: str) -> None:
            cid = claim_id(kind, value)
            if cid in claimed:
                return
            existing = load_fresh(self.store, cid, IdentifierClaim)
            if existing is not None:
                existing.ensure_usable_by(account_id, release_id, field_name)
                return
            claim(kind, value, False)

        def fresh(kind: str, scope: str, capacity: int, render: Callable[[int], str]) -> str:
            while True:
                n = self.blocks.take(kind, scope, capacity)
                lease.taken.append((kind, scope, n))
                value = render(n)
                cid = claim_id(kind, value)
                if cid in claimed:
                    continue
                if lease.careful and load_fresh(self.store, cid, IdentifierClaim) is not None:
                    lease.burnt.append((kind, scope, n))  # claimed by a given identifier
                    continue
                claim(kind, value, True)
                return value

        upc = validated.release.get("upc")
        if upc:
            claim_given("upc", str(upc), "release.upc")
        for i, t in enumerate(validated.tracks):
            if t.get("isrc"):
                claim_given("isrc", str(t["isrc"]), f"tracks[{i}].isrc")
        year = self._today().year
        prefix = self.policy.isrc_prefix
        scope = f"{prefix}{year % 100:02d}"
        for i in validated.missing_isrcs:
            validated.tracks[i]["isrc"] = fresh(
                "isrc", scope, DESIGNATION_SPACE, lambda n: make_isrc(prefix, year, n)
            )
        if not upc:
            company = self.policy.upc_prefix
            validated.release["upc"] = fresh(
                "upc", company, upc_capacity(company), lambda n: make_upc(company, n)
            )
        return out

    # -- after submission ---------------------------------------------------------------------

    def update_metadata(
        self,
        account_id: UUID,
        release_id: UUID,
        body: Mapping[str, Any],
        *,
        provenance: str = "MCP",
    ) -> JobResult:
        """Change a submitted release's metadata and deliver it again (a new job).

        The UPC, the track list, ISRCs and audio stay as submitted; titles, artist names,
        genre, date, cover art, writers and explicit flags may change. No credits.
        """
        cache: dict[str, FileFacts | None] = {}

        def attempt() -> JobResult:
            release = self.get_owned(account_id, release_id)
            release.ensure_live_for("updated")
            assert release.metadata is not None
            base = Draft(release=dict(release.metadata), tracks=[dict(t) for t in release.tracks])
            merged = merge_draft(
                base,
                mode="delta",
                release=body.get("release"),
                tracks=body.get("tracks"),
                track_patches=body.get("trackPatches"),
            )
            files = self._file_facts(
                account_id, urls_of(merged.release, merged.tracks), release.id, cache
            )
            validated = validate_submission(
                merged.release,
                merged.tracks,
                owner_id=account_id,
                today=self._today(),
                files=files,
                submitted_date=release.metadata.get("release_date"),
            )
            job = ProcessingJob(
                kind=RELEASE_UPDATE,
                release_id=release.id,
                owner_id=account_id,
                release_version=release.version + 1,
                stores=list(self.policy.stores),
                max_attempts=self.policy.max_attempts,
            )
            release.update_metadata(validated, job_id=job.id, stores=list(self.policy.stores))
            position = self.store.save_all(release, job)
            return JobResult(release.id, job.id, job.kind, position)

        return retrying(attempt)

    def takedown(
        self, account_id: UUID, release_id: UUID, *, reason: str = "", provenance: str = "MCP"
    ) -> JobResult:
        if not isinstance(reason, str):
            raise ValidationFailed("reason must be text.", code="invalid_field", field="reason")

        def attempt() -> JobResult:
            release = self.get_owned(account_id, release_id)
            release.ensure_live_for("taken down")
            job = ProcessingJob(
                kind=RELEASE_TAKEDOWN,
                release_id=release.id,
                owner_id=account_id,
                release_version=release.version + 1,
                stores=list(self.policy.stores),
                max_attempts=self.policy.max_attempts,
            )
            release.request_takedown(job_id=job.id, reason=reason, stores=list(self.policy.stores))
            position = self.store.save_all(release, job)
            return JobResult(release.id, job.id, job.kind, position)

        return retrying(attempt)

    def new_id(self) -> UUID:
        return uuid4()

    def ledger_balance(self, account_id: UUID) -> int:
        found = self.store.find(ledger_id(account_id), CreditLedger)
        return found.balance if found is not None else 0

    def now(self) -> datetime:
        return self.clock.now()
