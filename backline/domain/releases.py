"""The Release aggregate: drafts (every snapshot an event), submission, updates, takedown.

Pure domain: no I/O. What the application learns about uploaded files (owner, content
validation, AI detection) arrives as :class:`FileFacts`; today's date arrives as an
argument.

Drafts
    ``save_draft`` takes the seed's body. ``mode: "delta"`` (the default) deep-merges
    ``release`` into the draft (a ``null`` value removes a key), merges ``tracks`` by
    position (track *i* of the delta onto track *i*, extra tracks appended), then applies
    ``trackPatches`` (``{"index": i, "patch": {...}}`` or ``{"index": i, ...fields}``;
    ``"remove": true`` drops the track; ``index`` may equal the track count to append).
    ``mode: "snapshot"`` (also ``"full"``/``"replace"``) replaces the whole draft. Each
    call is one ``DraftSaved`` event carrying both the change and the resulting draft,
    so the history reads back snapshot by snapshot.

Submission
    :func:`validate_submission` performs what a distributor checks and names the field of
    every failure (``release.genre``, ``tracks[1].writers`` …). The application assigns
    missing ISRCs/UPC, prices the release and calls :meth:`Release.submit` once.

Choices the seeds leave open (documented in the README):

* genres come from :data:`GENRES` (case-insensitive, a few aliases);
* the release date may lie at most :data:`RELEASE_DATE_GRACE_DAYS` day in the past (time
  zones) and at most :data:`MAX_FUTURE_DAYS` ahead;
* cover art and audio must have passed the upload validation *for distribution*
  (``distribution_ready``: lossless ≥ 44.1 kHz/16-bit stereo audio, cover at least 3000x3000).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, ValidationFailed
from backline.domain.identifiers import check_isrc, check_upc

CONVERSATION_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/release-conversation")
IDEMPOTENCY_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/release-idempotency")

MAX_TRACKS = 100
MAX_TEXT = 200
MAX_WRITERS = 20
MAX_DRAFT_BYTES_HINT = 256 * 1024
MAX_KEY_LENGTH = 200
RELEASE_DATE_GRACE_DAYS = 1
MAX_FUTURE_DAYS = 730
DRAFT_STATUSES = ("collecting", "ready", "review", "draft")
DELTA_MODES = ("delta",)
SNAPSHOT_MODES = ("snapshot", "full", "replace")

# The genres a release may carry (the stores' common top-level list). Matching is
# case-insensitive; ALIASES map frequent spellings onto these names.
GENRES: tuple[str, ...] = (
    "Alternative",
    "Ambient",
    "Blues",
    "Children's Music",
    "Christian & Gospel",
    "Classical",
    "Comedy",
    "Country",
    "Dance",
    "Electronic",
    "Folk",
    "Hip-Hop/Rap",
    "Holiday",
    "Indie",
    "Instrumental",
    "Jazz",
    "K-Pop",
    "Latin",
    "Lo-Fi",
    "Metal",
    "New Age",
    "Pop",
    "Punk",
    "R&B/Soul",
    "Reggae",
    "Rock",
    "Singer/Songwriter",
    "Soundtrack",
    "Spoken Word",
    "World",
)
ALIASES: dict[str, str] = {
    "hip hop": "Hip-Hop/Rap",
    "hip-hop": "Hip-Hop/Rap",
    "hiphop": "Hip-Hop/Rap",
    "rap": "Hip-Hop/Rap",
    "r&b": "R&B/Soul",
    "rnb": "R&B/Soul",
    "soul": "R&B/Soul",
    "edm": "Electronic",
    "electronica": "Electronic",
    "gospel": "Christian & Gospel",
    "christian": "Christian & Gospel",
    "lofi": "Lo-Fi",
    "lo fi": "Lo-Fi",
    "kpop": "K-Pop",
    "film score": "Soundtrack",
    "children": "Children's Music",
}
_GENRE_BY_KEY = {g.lower(): g for g in GENRES} | ALIASES


def conversation_index_id(owner_id: UUID, conversation_id: str) -> UUID:
    return uuid5(CONVERSATION_NAMESPACE, f"{owner_id}:{conversation_id}")


def idempotency_index_id(owner_id: UUID, key: str) -> UUID:
    return uuid5(IDEMPOTENCY_NAMESPACE, f"{owner_id}:{key}")


def canonical_genre(raw: object) -> str | None:
    if not isinstance(raw, str):
        return None
    return _GENRE_BY_KEY.get(" ".join(raw.strip().lower().split()))


# -- draft merging ------------------------------------------------------------------------


def clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars), much cheaper than deepcopy."""
    if type(value) is dict:
        return {k: clone(v) for k, v in value.items()}
    if type(value) is list:
        return [clone(v) for v in value]
    return value


def deep_merge(base: dict[str, Any], delta: Mapping[str, Any]) -> dict[str, Any]:
    """``delta`` onto ``base``: nested dicts merge, ``None`` removes, the rest replaces."""
    out: dict[str, Any] = clone(base)
    for key, value in delta.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = clone(value) if isinstance(value, dict | list) else value
    return out


def _check_object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"{field} must be an object.", code="invalid_field", field=field)
    for key in value:
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise ValidationFailed(
                f"{field} has an invalid key.", code="invalid_field", field=field
            )
    return value


def _check_tracks(value: object, field: str = "tracks") -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValidationFailed(f"{field} must be a list.", code="invalid_field", field=field)
    if len(value) > MAX_TRACKS:
        raise ValidationFailed(
            f"{field} may hold at most {MAX_TRACKS} tracks.", code="too_many_tracks", field=field
        )
    return [_check_object(t, f"{field}[{i}]") for i, t in enumerate(value)]


@dataclass(frozen=True)
class Draft:
    release: dict[str, Any] = field(default_factory=dict)
    tracks: list[dict[str, Any]] = field(default_factory=list)
    upload_requests: list[Any] = field(default_factory=list)
    status: str = "collecting"


def merge_draft(
    current: Draft,
    *,
    mode: str = "delta",
    release: object = None,
    tracks: object = None,
    track_patches: object = None,
    upload_requests: object = None,
    status: object = None,
) -> Draft:
    """The draft after one save (see the module docstring for the rules)."""
    if mode not in DELTA_MODES + SNAPSHOT_MODES:
        raise ValidationFailed(
            "mode must be 'delta' or 'snapshot'.", code="invalid_mode", field="mode"
        )
    if status is not None and (not isinstance(status, str) or not 0 < len(status) <= 40):
        raise ValidationFailed(
            "status must be a short string.", code="invalid_field", field="status"
        )
    if upload_requests is not None and not isinstance(upload_requests, list):
        raise ValidationFailed(
            "uploadRequests must be a list.", code="invalid_field", field="uploadRequests"
        )
    new_release = _check_object(release, "release") if release is not None else None
    new_tracks = _check_tracks(tracks) if tracks is not None else None
    if mode in SNAPSHOT_MODES:
        merged_release = clone(new_release or {})
        merged_tracks = clone(new_tracks or [])
        uploads = clone(upload_requests) if isinstance(upload_requests, list) else []
    else:
        merged_release = (
            deep_merge(current.release, new_release)
            if new_release is not None
            else clone(current.release)
        )
        merged_tracks = clone(current.tracks)
        for i, t in enumerate(new_tracks or []):
            if i < len(merged_tracks):
                merged_tracks[i] = deep_merge(merged_tracks[i], t)
            else:
                merged_tracks.append(deep_merge({}, t))
        uploads = (
            clone(upload_requests)
            if isinstance(upload_requests, list)
            else clone(current.upload_requests)
        )
    merged_tracks = apply_track_patches(merged_tracks, track_patches)
    if len(merged_tracks) > MAX_TRACKS:
        raise ValidationFailed(
            f"A release holds at most {MAX_TRACKS} tracks.", code="too_many_tracks", field="tracks"
        )
    return Draft(
        release=merged_release,
        tracks=merged_tracks,
        upload_requests=uploads,
        status=status if isinstance(status, str) else current.status,
    )


def apply_track_patches(tracks: list[dict[str, Any]], patches: object) -> list[dict[str, Any]]:
    if patches is None:
        return tracks
    if not isinstance(patches, list):
        raise ValidationFailed(
            "trackPatches must be a list.", code="invalid_field", field="trackPatches"
        )
    out = list(tracks)
    for n, raw in enumerate(patches):
        where = f"trackPatches[{n}]"
        item = _check_object(raw, where)
        index = item.get("index", item.get("trackIndex"))
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= len(out):
            raise ValidationFailed(
                f"{where}.index must be a track index from 0 to {len(out)}.",
                code="invalid_track_index",
                field=f"{where}.index",
            )
        if item.get("remove") is True:
            if index == len(out):
                raise ValidationFailed(
                    f"{where}.index names no track.",
                    code="invalid_track_index",
                    field=f"{where}.index",
                )
            out.pop(index)
            continue
        if "patch" in item:
            patch = _check_object(item["patch"], f"{where}.patch")
        else:
            patch = {k: v for k, v in item.items() if k not in ("index", "trackIndex", "remove")}
        if index == len(out):
            out.append(deep_merge({}, patch))
        else:
            out[index] = deep_merge(out[index], patch)
    return out


# -- submission validation ------------------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    """What the upload side knows about a file the caller referenced."""

    url: str
    kind: str  # audio | coverArt
    owner_id: UUID
    sha256: str
    size: int
    content_type: str
    media: dict[str, Any]
    distribution_ready: bool
    problems: tuple[str, ...] = ()
    # AI detection: None when it never ran (the application runs it first).
    contains_ai: bool | None = None
    detection_status: str | None = None
    detection_provider: str | None = None
    detection_model: str | None = None
    predicted_model: str | None = None


@dataclass
class FieldError:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class ReleaseInvalid(ValidationFailed):
    """One or more fields fail; ``field``/``code`` name the first, ``errors`` all."""

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        extra = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            first.message + extra,
            code=first.code,
            field=first.field,
            errors=[e.as_dict() for e in errors],
        )
        self.errors = errors


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned or any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        return None
    return cleaned


def release_type_for(track_count: int, total_seconds: float) -> str:
    """Stores' rule of thumb: 1 to 3 tracks under 30 min a Single, up to 6 under 30 min an EP."""
    if track_count <= 3 and total_seconds < 30 * 60:
        return "Single"
    if track_count <= 6 and total_seconds < 30 * 60:
        return "EP"
    return "Album"


@dataclass(frozen=True)
class ValidatedRelease:
    """Normalised, distributor-checked data (ISRC/UPC may still be missing)."""

    release: dict[str, Any]
    tracks: list[dict[str, Any]]

    @property
    def missing_isrcs(self) -> list[int]:
        return [i for i, t in enumerate(self.tracks) if not t.get("isrc")]


def urls_of(
    release: Mapping[str, Any], tracks: Sequence[Mapping[str, Any]]
) -> list[tuple[str, str, str]]:
    """``(field, kind, url)`` of every file the submission references."""
    found: list[tuple[str, str, str]] = []
    cover = release.get("cover_art_file_url")
    if isinstance(cover, str) and cover:
        found.append(("release.cover_art_file_url", "coverArt", cover))
    for i, t in enumerate(tracks):
        url = t.get("audio_file_url") if isinstance(t, Mapping) else None
        if isinstance(url, str) and url:
            found.append((f"tracks[{i}].audio_file_url", "audio", url))
    return found


def validate_submission(
    release: Mapping[str, Any],
    tracks: list[Any],
    *,
    owner_id: UUID,
    today: date,
    files: Mapping[str, FileFacts | None],
    submitted_date: str | None = None,
) -> ValidatedRelease:
    """Check everything a distributor checks; raise :class:`ReleaseInvalid` naming fields.

    ``files`` maps each referenced URL to its facts, or ``None`` when the caller owns no
    such file (missing and foreign files look the same: nothing leaks).
    """
    errors: list[FieldError] = []

    def fail(field_name: str, code: str, message: str) -> None:
        errors.append(FieldError(field_name, code, message))

    out: dict[str, Any] = {}
    title = _text(release.get("title"))
    if title is None or len(title) > MAX_TEXT:
        fail("release.title", "invalid_title", f"release.title is required (1-{MAX_TEXT} chars).")
    out["title"] = title
    artist = _text(release.get("primary_artist_name"))
    if artist is None or len(artist) > MAX_TEXT:
        fail(
            "release.primary_artist_name",
            "invalid_primary_artist",
            f"release.primary_artist_name is required (1-{MAX_TEXT} chars).",
        )
    out["primary_artist_name"] = artist
    genre = canonical_genre(release.get("genre"))
    if genre is None:
        fail(
            "release.genre",
            "invalid_genre",
            f"release.genre must be one of: {', '.join(GENRES)}.",
        )
    out["genre"] = genre
    raw_date = release.get("release_date")
    parsed: date | None = None
    if isinstance(raw_date, str):
        try:
            parsed = date.fromisoformat(raw_date.strip())
        except ValueError:
            parsed = None
        if parsed is not None and len(raw_date.strip()) != 10:
            parsed = None
    if parsed is None:
        fail(
            "release.release_date",
            "invalid_release_date",
            "release.release_date is required as an ISO date (YYYY-MM-DD).",
        )
    elif parsed.isoformat() == submitted_date:
        pass  # a metadata update keeps the date the release went out with
    elif parsed < today - timedelta(days=RELEASE_DATE_GRACE_DAYS):
        fail(
            "release.release_date",
            "release_date_in_past",
            f"release.release_date {parsed.isoformat()} is in the past; stores need a date "
            f"from {(today - timedelta(days=RELEASE_DATE_GRACE_DAYS)).isoformat()} on.",
        )
    elif parsed > today + timedelta(days=MAX_FUTURE_DAYS):
        fail(
            "release.release_date",
            "release_date_too_far",
            f"release.release_date may be at most {MAX_FUTURE_DAYS} days ahead.",
        )
    out["release_date"] = parsed.isoformat() if parsed else None
    for optional in ("label_name", "copyright_line", "phonographic_line", "language"):
        value = release.get(optional)
        if value is None:
            continue
        text = _text(value)
        if text is None or len(text) > MAX_TEXT:
            fail(f"release.{optional}", "invalid_field", f"release.{optional} must be text.")
        else:
            out[optional] = text
    upc = release.get("upc")
    if upc is not None and upc != "":
        try:
            out["upc"] = check_upc(upc, "release.upc")
        except ValidationFailed as e:
            fail("release.upc", e.code, e.message)
    cover_url = release.get("cover_art_file_url")
    if not isinstance(cover_url, str) or not cover_url:
        fail(
            "release.cover_art_file_url",
            "missing_cover_art",
            "release.cover_art_file_url is required (upload cover art first).",
        )
    else:
        facts = files.get(cover_url)
        _check_file(facts, "release.cover_art_file_url", "coverArt", owner_id, fail)
        out["cover_art_file_url"] = cover_url
        if facts is not None:
            out["cover"] = _file_view(facts)

    if not isinstance(tracks, list) or not tracks:
        fail("tracks", "missing_tracks", "A release needs at least one track.")
        tracks = []
    elif len(tracks) > MAX_TRACKS:
        fail("tracks", "too_many_tracks", f"A release holds at most {MAX_TRACKS} tracks.")
        tracks = []
    seen_isrcs: dict[str, int] = {}
    out_tracks: list[dict[str, Any]] = []
    for i, raw in enumerate(tracks):
        where = f"tracks[{i}]"
        if not isinstance(raw, Mapping):
            fail(where, "invalid_track", f"{where} must be an object.")
            continue
        t: dict[str, Any] = {}
        t_title = _text(raw.get("title"))
        if t_title is None or len(t_title) > MAX_TEXT:
            fail(f"{where}.title", "invalid_title", f"{where}.title is required.")
        t["title"] = t_title
        t_artist = _text(raw.get("primary_artist_name")) or artist
        if (
            raw.get("primary_artist_name") is not None
            and _text(raw.get("primary_artist_name")) is None
        ):
            fail(
                f"{where}.primary_artist_name",
                "invalid_primary_artist",
                f"{where}.primary_artist_name must be text.",
            )
        t["primary_artist_name"] = t_artist
        explicit = raw.get("explicit_flag")
        if not isinstance(explicit, bool):
            fail(
                f"{where}.explicit_flag",
                "invalid_explicit_flag",
                f"{where}.explicit_flag is required (true or false).",
            )
        t["explicit_flag"] = explicit if isinstance(explicit, bool) else None
        writers = raw.get("writers")
        names: list[dict[str, str]] = []
        if isinstance(writers, list):
            for w in writers[: MAX_WRITERS + 1]:
                name = _text(w.get("name")) if isinstance(w, Mapping) else _text(w)
                if name is None or len(name) > MAX_TEXT:
                    names = []
                    break
                entry = {"name": name}
                role = w.get("role") if isinstance(w, Mapping) else None
                if isinstance(role, str) and role.strip():
                    entry["role"] = role.strip()[:40]
                names.append(entry)
        if not names or len(names) > MAX_WRITERS:
            fail(
                f"{where}.writers",
                "missing_writers",
                f"{where}.writers must list 1-{MAX_WRITERS} writers, each with a name.",
            )
        t["writers"] = names
        isrc = raw.get("isrc")
        if isrc is not None and isrc != "":
            try:
                value = check_isrc(isrc, f"{where}.isrc")
            except ValidationFailed as e:
                fail(f"{where}.isrc", e.code, e.message)
            else:
                if value in seen_isrcs:
                    fail(
                        f"{where}.isrc",
                        "duplicate_isrc",
                        f"{where}.isrc repeats tracks[{seen_isrcs[value]}].isrc.",
                    )
                seen_isrcs[value] = i
                t["isrc"] = value
        audio_url = raw.get("audio_file_url")
        if not isinstance(audio_url, str) or not audio_url:
            fail(f"{where}.audio_file_url", "missing_audio", f"{where}.audio_file_url is required.")
        else:
            facts = files.get(audio_url)
            _check_file(facts, f"{where}.audio_file_url", "audio", owner_id, fail)
            t["audio_file_url"] = audio_url
            if facts is not None:
                t["audio"] = _file_view(facts)
                t["duration_seconds"] = float(facts.media.get("duration_seconds") or 0.0)
                t["ai_detected"] = bool(facts.contains_ai)
                t["ai_detection"] = {
                    "status": facts.detection_status,
                    "containsAi": facts.contains_ai,
                    "provider": facts.detection_provider,
                    "model": facts.detection_model,
                    "predictedModel": facts.predicted_model,
                }
        for optional in ("language", "version_title"):
            value = raw.get(optional)
            if isinstance(value, str) and _text(value):
                t[optional] = _text(value)
        t["sequence"] = i + 1
        out_tracks.append(t)
    if errors:
        raise ReleaseInvalid(errors)
    total = sum(float(t.get("duration_seconds") or 0) for t in out_tracks)
    out["release_type"] = release_type_for(len(out_tracks), total)
    out.setdefault("label_name", out["primary_artist_name"])
    year = (out["release_date"] or today.isoformat())[:4]
    out.setdefault("copyright_line", f"{year} {out['label_name']}")
    out.setdefault("phonographic_line", f"{year} {out['label_name']}")
    out["explicit"] = any(t["explicit_flag"] for t in out_tracks)
    return ValidatedRelease(release=out, tracks=out_tracks)


def _file_view(facts: FileFacts) -> dict[str, Any]:
    return {
        "url": facts.url,
        "sha256": facts.sha256,
        "size": facts.size,
        "content_type": facts.content_type,
        "media": dict(facts.media),
    }


def _check_file(facts: FileFacts | None, where: str, kind: str, owner_id: UUID, fail: Any) -> None:
    label = "cover art" if kind == "coverArt" else "audio"
    if facts is None or facts.owner_id != owner_id:
        fail(where, "file_not_found", f"{where}: no such {label} file among your uploads.")
        return
    if facts.kind != kind:
        fail(where, "wrong_file_type", f"{where} must point to an uploaded {label} file.")
        return
    if not facts.distribution_ready:
        why = "; ".join(facts.problems) or "it does not meet store requirements"
        fail(
            where,
            f"{'cover' if kind == 'coverArt' else 'audio'}_not_distributable",
            f"{where}: {why}.",
        )


# -- aggregates -------------------------------------------------------------------------------


DRAFT = "draft"
SUBMITTED = "submitted"
TAKEN_DOWN = "taken_down"


class Release(Aggregate):
    """One release of one account, from first draft to takedown."""

    TOPIC = "backline.Release"

    class Created(Aggregate.Created):
        TOPIC = "backline.Release.Created"

    class Event(Aggregate.Event):
        pass

    class Started(Created):
        TOPIC = "backline.Release.Started"
        owner_id: UUID
        conversation_id: str | None
        provenance: str

    @event(Started)
    def __init__(self, owner_id: UUID, conversation_id: str | None, provenance: str) -> None:
        self.owner_id = owner_id
        self.conversation_id = conversation_id
        self.provenance = provenance
        self.state = DRAFT
        self.draft = Draft()
        self.draft_count = 0
        self.submission: dict[str, Any] | None = None
        self.metadata: dict[str, Any] | None = None
        self.tracks: list[dict[str, Any]] = []
        self.job_ids: list[UUID] = []
        self.metadata_revision = 0

    def ensure_owner(self, account_id: UUID) -> None:
        from backline.domain.errors import NotFound

        if self.owner_id != account_id:
            raise NotFound("Release not found.", code="release_not_found")

    @property
    def submitted(self) -> bool:
        return self.submission is not None

    # -- drafts --------------------------------------------------------------------------

    class DraftSaved(Event):
        TOPIC = "backline.Release.DraftSaved"
        mode: str
        change: dict[str, Any]
        release: dict[str, Any]
        tracks: list[dict[str, Any]]
        upload_requests: list[Any]
        status: str

    @event(DraftSaved)
    def _draft_saved(
        self,
        mode: str,
        change: dict[str, Any],
        release: dict[str, Any],
        tracks: list[dict[str, Any]],
        upload_requests: list[Any],
        status: str,
    ) -> None:
        self.draft = Draft(release, tracks, upload_requests, status)
        self.draft_count += 1

    def save_draft(self, change: dict[str, Any], *, mode: str = "delta") -> Draft:
        if self.submitted:
            raise Conflict(
                "This release was submitted; use the metadata update instead of a draft.",
                code="release_already_submitted",
            )
        merged = merge_draft(
            self.draft,
            mode=mode,
            release=change.get("release"),
            tracks=change.get("tracks"),
            track_patches=change.get("trackPatches"),
            upload_requests=change.get("uploadRequests"),
            status=change.get("status"),
        )
        self._draft_saved(
            mode=mode,
            change=clone(change),
            release=merged.release,
            tracks=merged.tracks,
            upload_requests=merged.upload_requests,
            status=merged.status,
        )
        return merged

    # -- submission --------------------------------------------------------------------

    class Submitted(Event):
        TOPIC = "backline.Release.Submitted"
        metadata: dict[str, Any]
        tracks: list[dict[str, Any]]
        cost: int
        track_credits: int
        token_offset: bool
        token_offset_credits: int
        ai_tracks: int
        human_tracks: int
        provenance: str
        idempotency_key: str | None
        job_id: UUID
        balance_after: int
        stores: list[str]

    @event(Submitted)
    def _submitted(
        self,
        metadata: dict[str, Any],
        tracks: list[dict[str, Any]],
        cost: int,
        track_credits: int,
        token_offset: bool,
        token_offset_credits: int,
        ai_tracks: int,
        human_tracks: int,
        provenance: str,
        idempotency_key: str | None,
        job_id: UUID,
        balance_after: int,
        stores: list[str],
    ) -> None:
        self.state = SUBMITTED
        self.metadata = metadata
        self.tracks = tracks
        self.job_ids.append(job_id)
        self.metadata_revision = 1
        self.submission = {
            "cost": cost,
            "track_credits": track_credits,
            "token_offset": token_offset,
            "token_offset_credits": token_offset_credits,
            "ai_tracks": ai_tracks,
            "human_tracks": human_tracks,
            "provenance": provenance,
            "idempotency_key": idempotency_key,
            "job_id": job_id,
            "balance_after": balance_after,
        }

    def submit(
        self,
        validated: ValidatedRelease,
        *,
        track_credits: int,
        token_offset_credits: int,
        provenance: str,
        idempotency_key: str | None,
        job_id: UUID,
        balance_after: int,
        stores: list[str],
    ) -> None:
        if self.submitted:
            raise Conflict("This release was already submitted.", code="release_already_submitted")
        if not validated.release.get("upc") or validated.missing_isrcs:
            raise ValueError("assign the UPC and every ISRC before submitting")
        ai = sum(1 for t in validated.tracks if t.get("ai_detected"))
        self._submitted(
            metadata=clone(validated.release),
            tracks=clone(validated.tracks),
            cost=track_credits + token_offset_credits,
            track_credits=track_credits,
            token_offset=token_offset_credits > 0,
            token_offset_credits=token_offset_credits,
            ai_tracks=ai,
            human_tracks=len(validated.tracks) - ai,
            provenance=provenance,
            idempotency_key=idempotency_key,
            job_id=job_id,
            balance_after=balance_after,
            stores=list(stores),
        )

    # -- after submission ----------------------------------------------------------------

    def ensure_live_for(self, action: str) -> None:
        if self.state == DRAFT:
            raise Conflict(
                f"Only a submitted release can be {action}; this one is a draft.",
                code="release_not_submitted",
            )
        if self.state == TAKEN_DOWN:
            raise Conflict("This release was taken down.", code="release_taken_down")

    class MetadataUpdated(Event):
        TOPIC = "backline.Release.MetadataUpdated"
        metadata: dict[str, Any]
        tracks: list[dict[str, Any]]
        job_id: UUID
        revision: int
        stores: list[str]

    @event(MetadataUpdated)
    def _metadata_updated(
        self,
        metadata: dict[str, Any],
        tracks: list[dict[str, Any]],
        job_id: UUID,
        revision: int,
        stores: list[str],
    ) -> None:
        self.metadata = metadata
        self.tracks = tracks
        self.job_ids.append(job_id)
        self.metadata_revision = revision

    def update_metadata(
        self, validated: ValidatedRelease, *, job_id: UUID, stores: list[str]
    ) -> None:
        self.ensure_live_for("updated")
        assert self.metadata is not None
        if validated.release.get("upc") != self.metadata.get("upc"):
            raise ValidationFailed(
                "release.upc cannot change after submission.",
                code="upc_immutable",
                field="release.upc",
            )
        if len(validated.tracks) != len(self.tracks):
            raise ValidationFailed(
                "The track list cannot change in a metadata update; submit a new release.",
                code="tracks_immutable",
                field="tracks",
            )
        for i, (new, old) in enumerate(zip(validated.tracks, self.tracks, strict=True)):
            if new.get("isrc") != old.get("isrc"):
                raise ValidationFailed(
                    f"tracks[{i}].isrc cannot change after submission.",
                    code="isrc_immutable",
                    field=f"tracks[{i}].isrc",
                )
            if (new.get("audio") or {}).get("sha256") != (old.get("audio") or {}).get("sha256"):
                raise ValidationFailed(
                    f"tracks[{i}].audio_file_url cannot change after submission.",
                    code="audio_immutable",
                    field=f"tracks[{i}].audio_file_url",
                )
        self._metadata_updated(
            metadata=clone(validated.release),
            tracks=clone(validated.tracks),
            job_id=job_id,
            revision=self.metadata_revision + 1,
            stores=list(stores),
        )

    class TakedownRequested(Event):
        TOPIC = "backline.Release.TakedownRequested"
        job_id: UUID
        reason: str
        stores: list[str]

    @event(TakedownRequested)
    def _takedown_requested(self, job_id: UUID, reason: str, stores: list[str]) -> None:
        self.state = TAKEN_DOWN
        self.job_ids.append(job_id)

    def request_takedown(self, *, job_id: UUID, reason: str, stores: list[str]) -> None:
        self.ensure_live_for("taken down")
        self._takedown_requested(job_id=job_id, reason=reason[:500], stores=list(stores))


class ConversationIndex(Aggregate):
    """Maps one account's ``conversationId`` to its release (uuid5 id: one per pair)."""

    TOPIC = "backline.ReleaseConversationIndex"

    class Created(Aggregate.Created):
        TOPIC = "backline.ReleaseConversationIndex.Created"

    class Linked(Created):
        TOPIC = "backline.ReleaseConversationIndex.Linked"
        owner_id: UUID
        conversation_id: str
        release_id: UUID

    @staticmethod
    def create_id(owner_id: UUID, conversation_id: str, **_: object) -> UUID:
        return conversation_index_id(owner_id, conversation_id)

    @event(Linked)
    def __init__(self, owner_id: UUID, conversation_id: str, release_id: UUID) -> None:
        self.owner_id = owner_id
        self.conversation_id = conversation_id
        self.release_id = release_id


class IdempotencyIndex(Aggregate):
    """Maps one account's ``Idempotency-Key`` on submit to the release it created."""

    TOPIC = "backline.ReleaseIdempotencyIndex"

    class Created(Aggregate.Created):
        TOPIC = "backline.ReleaseIdempotencyIndex.Created"

    class Recorded(Created):
        TOPIC = "backline.ReleaseIdempotencyIndex.Recorded"
        owner_id: UUID
        key: str
        release_id: UUID

    @staticmethod
    def create_id(owner_id: UUID, key: str, **_: object) -> UUID:
        return idempotency_index_id(owner_id, key)

    @event(Recorded)
    def __init__(self, owner_id: UUID, key: str, release_id: UUID) -> None:
        self.owner_id = owner_id
        self.key = key
        self.release_id = release_id
