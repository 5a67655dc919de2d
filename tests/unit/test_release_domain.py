"""Release aggregate: drafts (delta, snapshot, trackPatches, history), validation, submission."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import uuid4

import pytest

from backline.domain.errors import Conflict, NotFound, ValidationFailed
from backline.domain.releases import (
    GENRES,
    FileFacts,
    Release,
    ReleaseInvalid,
    canonical_genre,
    release_type_for,
    validate_submission,
)

OWNER = uuid4()
TODAY = date(2026, 11, 21)
COVER = f"/api/files/cover-art/{OWNER}/cover.png"
AUDIO = f"/api/files/audio/{OWNER}/track.wav"


def facts(url: str, kind: str, *, ready: bool = True, ai: bool | None = False) -> FileFacts:
    media: dict[str, Any] = (
        {"format": "PNG", "width": 3000, "height": 3000}
        if kind == "coverArt"
        else {
            "format": "WAV",
            "sample_rate": 44100,
            "bit_depth": 16,
            "channels": 2,
            "duration_seconds": 200.0,
        }
    )
    return FileFacts(
        url=url,
        kind=kind,
        owner_id=OWNER,
        sha256="ab" * 32,
        size=1000,
        content_type="image/png" if kind == "coverArt" else "audio/wav",
        media=media,
        distribution_ready=ready,
        problems=() if ready else ("sample rate 22050 Hz is below 44100 Hz.",),
        contains_ai=ai,
        detection_status="ok",
    )


FILES = {COVER: facts(COVER, "coverArt"), AUDIO: facts(AUDIO, "audio")}


def good_release(**over: Any) -> dict[str, Any]:
    r = {
        "title": "My Release",
        "primary_artist_name": "Artist Name",
        "genre": "Pop",
        "release_date": "2026-12-01",
        "cover_art_file_url": COVER,
    }
    r.update(over)
    return r


def good_track(**over: Any) -> dict[str, Any]:
    t = {
        "title": "Song",
        "audio_file_url": AUDIO,
        "explicit_flag": False,
        "writers": [{"name": "First Last"}],
    }
    t.update(over)
    return t


def new_release() -> Release:
    return Release(owner_id=OWNER, conversation_id="conv-1", provenance="MCP")


# -- drafts -----------------------------------------------------------------------------


def test_delta_merges_and_every_snapshot_is_an_event() -> None:
    r = new_release()
    r.save_draft({"release": {"title": "A", "label": {"name": "L", "country": "FR"}}})
    r.save_draft({"release": {"genre": "Pop", "label": {"country": "DE"}}, "status": "collecting"})
    r.save_draft({"tracks": [{"title": "One"}, {"title": "Two"}]})
    r.save_draft({"tracks": [{"explicit_flag": True}]})
    assert r.draft.release == {
        "title": "A",
        "genre": "Pop",
        "label": {"name": "L", "country": "DE"},
    }
    assert r.draft.tracks == [{"title": "One", "explicit_flag": True}, {"title": "Two"}]
    events = r.collect_events()
    drafts = [e for e in events if isinstance(e, Release.DraftSaved)]
    assert len(drafts) == 4
    assert drafts[0].release == {"title": "A", "label": {"name": "L", "country": "FR"}}
    assert drafts[1].change == {
        "release": {"genre": "Pop", "label": {"country": "DE"}},
        "status": "collecting",
    }
    # Replaying the events rebuilds the same draft.
    copy: Any = None
    for e in events:
        copy = e.mutate(copy)
    assert isinstance(copy, Release)
    assert copy.draft == r.draft
    assert copy.draft_count == 4


def test_null_removes_a_key_and_snapshot_replaces() -> None:
    r = new_release()
    r.save_draft({"release": {"title": "A", "genre": "Pop"}, "tracks": [{"title": "x"}]})
    r.save_draft({"release": {"genre": None}})
    assert r.draft.release == {"title": "A"}
    r.save_draft({"release": {"title": "B"}}, mode="snapshot")
    assert r.draft.release == {"title": "B"}
    assert r.draft.tracks == []


def test_track_patches_by_index_append_and_remove() -> None:
    r = new_release()
    r.save_draft({"tracks": [{"title": "One"}, {"title": "Two"}]})
    r.save_draft(
        {
            "trackPatches": [
                {"index": 1, "patch": {"isrc": "USRC17607839"}},
                {"index": 0, "title": "Uno"},
                {"index": 2, "title": "Three"},
            ]
        }
    )
    assert [t["title"] for t in r.draft.tracks] == ["Uno", "Two", "Three"]
    assert r.draft.tracks[1]["isrc"] == "USRC17607839"
    r.save_draft({"trackPatches": [{"index": 0, "remove": True}]})
    assert [t["title"] for t in r.draft.tracks] == ["Two", "Three"]
    with pytest.raises(ValidationFailed) as e:
        r.save_draft({"trackPatches": [{"index": 5, "title": "nope"}]})
    assert e.value.details["field"] == "trackPatches[0].index"
    with pytest.raises(ValidationFailed) as e:
        r.save_draft({"release": {"title": "x"}}, mode="sideways")
    assert e.value.code == "invalid_mode"


def test_other_owner_is_not_found() -> None:
    r = new_release()
    with pytest.raises(NotFound):
        r.ensure_owner(uuid4())


# -- validation ---------------------------------------------------------------------------


def test_valid_submission_normalises() -> None:
    v = validate_submission(
        good_release(genre="hip hop", upc="036000291452"),
        [good_track(isrc="us-rc1-76-07839")],
        owner_id=OWNER,
        today=TODAY,
        files=FILES,
    )
    assert v.release["genre"] == "Hip-Hop/Rap"
    assert v.release["upc"] == "036000291452"
    assert v.release["release_type"] == "Single"
    assert v.release["label_name"] == "Artist Name"
    assert v.tracks[0]["isrc"] == "USRC17607839"
    assert v.tracks[0]["primary_artist_name"] == "Artist Name"
    assert v.tracks[0]["duration_seconds"] == 200.0
    assert v.missing_isrcs == []


@pytest.mark.parametrize(
    ("release", "track", "field", "code"),
    [
        ({"title": " "}, {}, "release.title", "invalid_title"),
        (
            {"primary_artist_name": None},
            {},
            "release.primary_artist_name",
            "invalid_primary_artist",
        ),
        ({"genre": "Polka-Step"}, {}, "release.genre", "invalid_genre"),
        ({"release_date": "01/12/2026"}, {}, "release.release_date", "invalid_release_date"),
        ({"release_date": "2026-11-19"}, {}, "release.release_date", "release_date_in_past"),
        ({"release_date": "2030-01-01"}, {}, "release.release_date", "release_date_too_far"),
        ({"upc": "036000291453"}, {}, "release.upc", "invalid_upc"),
        ({"cover_art_file_url": None}, {}, "release.cover_art_file_url", "missing_cover_art"),
        (
            {"cover_art_file_url": f"/api/files/cover-art/{uuid4()}/x.png"},
            {},
            "release.cover_art_file_url",
            "file_not_found",
        ),
        ({"cover_art_file_url": AUDIO}, {}, "release.cover_art_file_url", "wrong_file_type"),
        ({}, {"title": ""}, "tracks[0].title", "invalid_title"),
        ({}, {"explicit_flag": None}, "tracks[0].explicit_flag", "invalid_explicit_flag"),
        ({}, {"explicit_flag": "no"}, "tracks[0].explicit_flag", "invalid_explicit_flag"),
        ({}, {"writers": []}, "tracks[0].writers", "missing_writers"),
        ({}, {"writers": [{"name": ""}]}, "tracks[0].writers", "missing_writers"),
        ({}, {"isrc": "US-RC1-76-0783"}, "tracks[0].isrc", "invalid_isrc"),
        ({}, {"audio_file_url": None}, "tracks[0].audio_file_url", "missing_audio"),
    ],
)
def test_each_failure_names_its_field(
    release: dict[str, Any], track: dict[str, Any], field: str, code: str
) -> None:
    with pytest.raises(ReleaseInvalid) as e:
        validate_submission(
            good_release(**release),
            [good_track(**track)],
            owner_id=OWNER,
            today=TODAY,
            files=FILES,
        )
    assert e.value.details["field"] == field
    assert e.value.code == code
    assert {"field": field, "code": code} in [
        {"field": x["field"], "code": x["code"]} for x in e.value.details["errors"]
    ]


def test_date_within_grace_is_accepted_and_all_errors_are_listed() -> None:
    validate_submission(
        good_release(release_date="2026-11-20"),
        [good_track()],
        owner_id=OWNER,
        today=TODAY,
        files=FILES,
    )
    with pytest.raises(ReleaseInvalid) as e:
        validate_submission(
            good_release(title="", genre="nope"),
            [good_track(writers=None), good_track(isrc="bad")],
            owner_id=OWNER,
            today=TODAY,
            files=FILES,
        )
    fields = [x["field"] for x in e.value.details["errors"]]
    assert fields == ["release.title", "release.genre", "tracks[0].writers", "tracks[1].isrc"]


def test_files_must_be_distribution_ready_and_tracks_present() -> None:
    bad = {**FILES, AUDIO: facts(AUDIO, "audio", ready=False)}
    with pytest.raises(ReleaseInvalid) as e:
        validate_submission(good_release(), [good_track()], owner_id=OWNER, today=TODAY, files=bad)
    assert e.value.code == "audio_not_distributable"
    assert "44100" in e.value.message
    with pytest.raises(ReleaseInvalid) as e:
        validate_submission(good_release(), [], owner_id=OWNER, today=TODAY, files=FILES)
    assert e.value.details["field"] == "tracks"
    with pytest.raises(ReleaseInvalid) as e:
        validate_submission(
            good_release(),
            [good_track(isrc="USRC17607839"), good_track(isrc="USRC17607839")],
            owner_id=OWNER,
            today=TODAY,
            files=FILES,
        )
    assert e.value.code == "duplicate_isrc"


def test_genre_list_and_release_type() -> None:
    assert all(canonical_genre(g) == g for g in GENRES)
    assert canonical_genre("  r&b ") == "R&B/Soul"
    assert canonical_genre(3) is None
    assert release_type_for(1, 200) == "Single"
    assert release_type_for(5, 1200) == "EP"
    assert release_type_for(12, 2400) == "Album"


# -- submission and afterwards ----------------------------------------------------------------


def _validated() -> Any:
    v = validate_submission(
        good_release(), [good_track()], owner_id=OWNER, today=TODAY, files=FILES
    )
    v.release["upc"] = "036000291452"
    v.tracks[0]["isrc"] = "USRC17607839"
    return v


def test_submit_once_then_update_and_takedown() -> None:
    r = new_release()
    r.save_draft({"release": {"title": "x"}})
    job = uuid4()
    r.submit(
        _validated(),
        track_credits=1,
        token_offset_credits=1,
        provenance="AIMD",
        idempotency_key=None,
        job_id=job,
        balance_after=8,
        stores=["spotify"],
    )
    assert r.submitted
    assert r.submission is not None
    assert r.submission["cost"] == 2
    assert r.submission["provenance"] == "AIMD"
    with pytest.raises(Conflict):
        r.save_draft({"release": {"title": "y"}})
    with pytest.raises(Conflict):
        r.submit(
            _validated(),
            track_credits=1,
            token_offset_credits=0,
            provenance="MCP",
            idempotency_key=None,
            job_id=uuid4(),
            balance_after=0,
            stores=[],
        )
    v = _validated()
    v.release["title"] = "New title"
    r.update_metadata(v, job_id=uuid4(), stores=["spotify"])
    assert r.metadata is not None
    assert r.metadata["title"] == "New title"
    assert r.metadata_revision == 2
    v2 = _validated()
    v2.tracks[0]["isrc"] = "USRC17607840"
    with pytest.raises(ValidationFailed) as e:
        r.update_metadata(v2, job_id=uuid4(), stores=["spotify"])
    assert e.value.details["field"] == "tracks[0].isrc"
    r.request_takedown(job_id=uuid4(), reason="artist request", stores=["spotify"])
    assert r.state == "taken_down"
    with pytest.raises(Conflict):
        r.request_takedown(job_id=uuid4(), reason="again", stores=["spotify"])


def test_submit_requires_identifiers_and_drafts_cannot_be_taken_down() -> None:
    r = new_release()
    v = validate_submission(
        good_release(), [good_track()], owner_id=OWNER, today=TODAY, files=FILES
    )
    with pytest.raises(ValueError, match="UPC"):
        r.submit(
            v,
            track_credits=1,
            token_offset_credits=0,
            provenance="MCP",
            idempotency_key=None,
            job_id=uuid4(),
            balance_after=0,
            stores=[],
        )
    with pytest.raises(Conflict) as e:
        r.request_takedown(job_id=uuid4(), reason="", stores=[])
    assert e.value.code == "release_not_submitted"


def test_an_update_may_keep_a_release_date_now_in_the_past() -> None:
    old = {"release_date": "2026-01-10"}
    with pytest.raises(ReleaseInvalid):
        validate_submission(
            good_release(**old), [good_track()], owner_id=OWNER, today=TODAY, files=FILES
        )
    kept = validate_submission(
        good_release(**old),
        [good_track()],
        owner_id=OWNER,
        today=TODAY,
        files=FILES,
        submitted_date="2026-01-10",
    )
    assert kept.release["release_date"] == "2026-01-10"
    with pytest.raises(ReleaseInvalid):  # moving it to another past date is still refused
        validate_submission(
            good_release(release_date="2026-01-11"),
            [good_track()],
            owner_id=OWNER,
            today=TODAY,
            files=FILES,
            submitted_date="2026-01-10",
        )
