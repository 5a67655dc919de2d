"""Releases end to end through the use cases on SQLite and PostgreSQL.

Drafts, submission billed in the same transaction as the release, idempotent
resubmission, concurrent submissions (one charge), ISRC/UPC assignment and claims,
insufficient credits, delivery to the store simulator (ERN checked), a store that keeps
failing (job failed, credits refunded), takedown and metadata update.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from backline.application.ern import check_required
from backline.domain.credits import CreditLedger, ledger_id
from backline.domain.delivery import ProcessingJob
from backline.domain.errors import Conflict, NotFound, ValidationFailed
from backline.domain.identifiers import make_isrc
from backline.domain.releases import Release
from backline.domain.uploads import StoredFile, parse_file_url
from backline.infra.container import Container
from tests.releases_helpers import Artist, build, drive_delivery


@pytest.fixture
def c(database_url: str, tmp_path: Path) -> Iterator[Container]:
    container = build(database_url, tmp_path)
    yield container
    container.close()


def release_row(c: Container, account: UUID, release_id: UUID) -> dict[str, Any]:
    row = c.release_queries.release(account, release_id)
    assert row is not None
    return row


def ledger_refs(c: Container, account: UUID) -> dict[str, int]:
    ledger = c.store.get(ledger_id(account), CreditLedger)
    return {ref: amount for ref, (amount, _refunded) in ledger.debits.items()}


def test_draft_deltas_then_submit_bills_tracks_and_token_offset(c: Container) -> None:
    a = Artist(c, "ada@example.com", credits=10)
    svc = c.releases
    d1 = svc.save_draft(a.id, {"conversationId": "conv-1", "release": {"title": "Night"}})
    d2 = svc.save_draft(
        a.id,
        {
            "conversationId": "conv-1",
            "mode": "delta",
            "release": {"genre": "Electronic", "primary_artist_name": "Ada"},
            "tracks": [a.track(a.human, "One"), {"title": "Two"}],
        },
    )
    assert d2.release_id == d1.release_id
    d3 = svc.save_draft(
        a.id,
        {
            "releaseId": str(d1.release_id),
            "trackPatches": [{"index": 1, "patch": a.track(a.ai, "Two")}],
            "status": "ready",
        },
    )
    assert d3.draft_version == 3
    history = svc.draft_history(a.id, d1.release_id)
    assert [h["release"].get("title") for h in history] == ["Night", "Night", "Night"]
    assert history[0]["tracks"] == []
    assert history[2]["tracks"][1]["audio_file_url"] == a.ai

    # The AI track was never detected: submission runs detection first.
    ai_file = c.store.get(parse_file_url(a.ai).id, StoredFile)
    assert ai_file.detection is None
    result = svc.submit(
        a.id,
        {
            "conversationId": "conv-1",
            "release": {"title": "Night Drive", **a.release()},
            "tokenOffset": True,
        },
        provenance="AIMD",
    )
    assert result.release_id == d1.release_id
    assert (result.track_credits, result.token_offset_credits) == (3, 1)  # 1 human + 2 AI
    assert result.credits_charged == 4
    assert result.new_balance == 6 == a.balance()
    assert (result.ai_tracks, result.human_tracks) == (1, 1)
    assert not result.replayed
    refs = ledger_refs(c, a.id)
    assert refs[f"release:{result.release_id}"] == 3
    assert refs[f"token_offset:{result.release_id}"] == 1
    detected = c.store.get(parse_file_url(a.ai).id, StoredFile).detection
    assert detected is not None
    assert detected["contains_ai"] is True

    # Release and ledger were saved in one transaction: the same notification ids.
    release = c.store.get(result.release_id, Release)
    assert release.metadata is not None
    assert release.metadata["upc"] == result.upc
    assert release.submission is not None
    assert release.submission["provenance"] == "AIMD"

    # Resubmitting by conversation, by releaseId: the first result, nothing charged.
    again = svc.submit(a.id, {"conversationId": "conv-1", "release": a.release()})
    assert again.replayed
    assert (again.release_id, again.job_id, again.credits_charged) == (
        result.release_id,
        result.job_id,
        4,
    )
    again = svc.submit(a.id, {"releaseId": str(result.release_id), "tokenOffset": False})
    assert again.replayed
    assert a.balance() == 6

    # Read side: release row, token offset row, credit history.
    c.runner.catch_up()
    rows = c.release_queries.list_releases(a.id, 100)
    assert [r["release_id"] for r in rows] == [str(result.release_id)]
    row = rows[0]
    assert (row["state"], row["mcp_provenance"], row["credits_charged"]) == ("submitted", "AIMD", 4)
    assert row["metadata"]["release"]["title"] == "Night Drive"
    offset = c.release_queries.token_offset(result.release_id)
    assert offset is not None
    assert (offset["credits"], offset["ref"]) == (1, f"token_offset:{result.release_id}")
    tx_refs = [t["ref"] for t in c.credit_queries.transactions(a.id, 10)]
    assert f"token_offset:{result.release_id}" in tx_refs
    assert f"release:{result.release_id}" in tx_refs


def test_idempotency_key_and_other_users(c: Container) -> None:
    a = Artist(c, "ada@example.com")
    b = Artist(c, "bob@example.com")
    body = {"release": a.release(), "tracks": [a.track(a.human)]}
    first = c.releases.submit(a.id, body, idempotency_key="key-1")
    second = c.releases.submit(a.id, body, idempotency_key="key-1")
    assert second.replayed
    assert second.release_id == first.release_id
    assert a.balance() == 9
    # Another user's release is not found, and another user's files are "no such file".
    with pytest.raises(NotFound):
        c.releases.submit(b.id, {"releaseId": str(first.release_id)})
    with pytest.raises(NotFound):
        c.releases.save_draft(b.id, {"releaseId": str(first.release_id), "release": {}})
    with pytest.raises(ValidationFailed) as e:
        c.releases.submit(b.id, {"release": b.release(), "tracks": [b.track(a.human)]})
    assert e.value.code == "file_not_found"
    assert e.value.details["field"] == "tracks[0].audio_file_url"
    assert b.balance() == 10


def test_insufficient_credits_names_cost_balance_and_how_to_buy(c: Container) -> None:
    a = Artist(c, "ada@example.com", credits=2)
    body = {
        "conversationId": "c",
        "release": a.release(),
        "tracks": [a.track(a.human), a.track(a.ai, "AI")],
        "tokenOffset": True,
    }
    with pytest.raises(Conflict) as e:
        c.releases.submit(a.id, body)
    assert e.value.code == "insufficient_credits"
    assert (e.value.details["cost"], e.value.details["balance"]) == (4, 2)
    assert "create_credit_checkout_session" in e.value.details["howToBuy"]["checkout"]
    assert e.value.details["autoReload"]["enabled"] is False
    assert a.balance() == 2
    # Nothing was written for the release: a later top-up and retry charge once.
    c.credits.grant(a.id, 5, "grant:topup")
    ok = c.releases.submit(a.id, body)
    assert ok.credits_charged == 4
    assert a.balance() == 3


def test_auto_reload_runs_before_failing(c: Container) -> None:
    a = Artist(c, "ada@example.com", credits=0)
    assert c.sandbox_payments is not None
    created = c.billing.create_checkout(a.id, credits=1, ui_mode="hosted", save_payment_method=True)
    payload, sig, _ = c.sandbox_payments.complete(created.session.id, "visa")
    c.billing.handle_webhook(payload, sig)
    assert a.balance() == 1
    body = {"release": a.release(), "tracks": [a.track(a.ai)], "tokenOffset": True}  # 3 credits
    with pytest.raises(Conflict) as e:  # auto-reload not enabled: fails with how to buy
        c.releases.submit(a.id, body)
    assert e.value.details["autoReload"] == {"enabled": False, "attempted": False}
    c.billing.set_autoreload(a.id, enabled=True, package_id="credits_10", threshold=0)
    r = c.releases.submit(a.id, body)
    assert r.credits_charged == 3
    assert r.new_balance == 1 + 10 - 3 == a.balance()


def test_isrc_and_upc_assignment_and_claims(c: Container) -> None:
    a = Artist(c, "ada@example.com", credits=50)
    b = Artist(c, "bob@example.com", credits=50)
    seen_isrcs: set[str] = set()
    seen_upcs: set[str] = set()
    for n in range(6):
        r = c.releases.submit(
            a.id,
            {"release": a.release(title=f"R{n}"), "tracks": [a.track(a.human), a.track(a.human)]},
        )
        assert len(r.isrcs) == 2
        for isrc in r.isrcs:
            assert isrc.startswith("ZZBLN")
            assert isrc not in seen_isrcs
            seen_isrcs.add(isrc)
        assert r.upc not in seen_upcs
        assert r.upc.startswith("020000")
        seen_upcs.add(r.upc)
    # A user-given ISRC: reusable by its owner, refused for anyone else; a given UPC once.
    given = c.releases.submit(
        a.id,
        {
            "release": a.release(upc="036000291452"),
            "tracks": [a.track(a.human, isrc="US-RC1-76-07839")],
        },
    )
    assert given.isrcs == ["USRC17607839"]
    assert given.upc == "036000291452"
    reuse = c.releases.submit(
        a.id, {"release": a.release(), "tracks": [a.track(a.human, isrc="USRC17607839")]}
    )
    assert reuse.isrcs == ["USRC17607839"]
    with pytest.raises(Conflict) as e:
        c.releases.submit(
            b.id, {"release": b.release(), "tracks": [b.track(b.human, isrc="USRC17607839")]}
        )
    assert e.value.code == "isrc_taken"
    assert e.value.details["field"] == "tracks[0].isrc"
    with pytest.raises(Conflict) as e:
        c.releases.submit(
            a.id, {"release": a.release(upc="036000291452"), "tracks": [a.track(a.human)]}
        )
    assert e.value.code == "upc_taken"
    with pytest.raises(ValidationFailed) as invalid:
        c.releases.submit(
            a.id, {"release": a.release(upc="036000291453"), "tracks": [a.track(a.human)]}
        )
    assert invalid.value.details["field"] == "release.upc"


def test_an_assigned_number_already_given_by_a_user_is_skipped(c: Container) -> None:
    a = Artist(c, "ada@example.com", credits=10)
    c.releases.blocks.shards = 1  # numbers come in order: 0, 1, 2, ...
    year = datetime.now(UTC).year
    first = make_isrc("ZZBLN", year, 0)
    given = c.releases.submit(
        a.id, {"release": a.release(), "tracks": [a.track(a.human, isrc=first)]}
    )
    assert given.isrcs == [first]
    # The next assignment meets the claim on number 0, retries carefully, takes 1.
    assigned = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
    assert assigned.isrcs == [make_isrc("ZZBLN", year, 1)]
    later = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
    assert later.isrcs == [make_isrc("ZZBLN", year, 2)]
    assert a.balance() == 7


def test_two_processes_submitting_at_once_charge_once(
    database_url: str, tmp_path: Path, c: Container
) -> None:
    a = Artist(c, "ada@example.com", credits=10)
    draft = c.releases.save_draft(
        a.id,
        {"conversationId": "race", "release": a.release(), "tracks": [a.track(a.ai)]},
    )
    other = build(database_url, tmp_path)  # a second event store: another "process"
    results: list[Any] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def submit(container: Container) -> None:
        try:
            barrier.wait()
            results.append(container.releases.submit(a.id, {"conversationId": "race"}))
        except BaseException as e:
            errors.append(e)

    try:
        threads = [threading.Thread(target=submit, args=(x,)) for x in (c, other, c, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.close()
    assert not errors, errors
    assert len(results) == 4
    assert {r.release_id for r in results} == {draft.release_id}
    assert len({r.job_id for r in results}) == 1
    assert sum(1 for r in results if not r.replayed) == 1
    assert a.balance() == 8  # one AI track: 2 credits, once
    jobs = [e for e in c.store.events.get(draft.release_id) if isinstance(e, Release.Submitted)]
    assert len(jobs) == 1


def test_delivery_goes_live_and_store_receives_a_valid_ern(c: Container) -> None:
    a = Artist(c, "ada@example.com")
    r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
    row = drive_delivery(c, r.job_id, ("live",))
    assert row["error"] is None
    assert set(row["stores"]) == {"spotify", "apple_music", "amazon_music"}
    stores = c.release_queries.stores(r.release_id)
    assert {s["status"] for s in stores} == {"live"}
    assert release_row(c, a.id, r.release_id)["status"] == "live"
    deliveries = c.delivery.simulator.deliveries()
    assert sorted(d["store"] for d in deliveries) == ["amazon_music", "apple_music", "spotify"]
    batch = next((c.settings.data_dir / "store-simulator" / "spotify").iterdir())
    root = check_required((batch / "message.xml").read_bytes())
    assert root.findtext("ReleaseList/Release/ReleaseId/ICPN") == r.upc
    assert (
        root.findtext("ResourceList/SoundRecording/SoundRecordingEdition/ResourceId/ISRC")
        == (r.isrcs[0])
    )
    # The whole job is in the job's events: one delivery per store, never twice.
    job_events = list(c.store.events.get(r.job_id))
    delivered = [e.store for e in job_events if isinstance(e, ProcessingJob.StoreDelivered)]
    assert sorted(delivered) == ["amazon_music", "apple_music", "spotify"]


def test_store_that_keeps_failing_fails_the_job_and_refunds(
    database_url: str, tmp_path: Path
) -> None:
    c = build(
        database_url,
        tmp_path,
        BACKLINE_RELEASE_STORES="tidal",
        BACKLINE_STORE_FAILURE_RATES="tidal=1",
        BACKLINE_DELIVERY_MAX_ATTEMPTS="3",
    )
    try:
        a = Artist(c, "ada@example.com", credits=5)
        r = c.releases.submit(
            a.id,
            {"release": a.release(), "tracks": [a.track(a.ai)], "tokenOffset": True},
        )
        assert a.balance() == 2
        row = drive_delivery(c, r.job_id, ("failed",))
        assert "tidal: " in row["error"]
        assert "503" in row["error"]
        assert row["stores"]["tidal"]["attempts"] == 3
        job = c.store.get(r.job_id, ProcessingJob)
        assert job.status == "failed"
        assert job.refunded == 3
        assert a.balance() == 5  # tracks and token offset given back
        c.runner.catch_up()
        assert release_row(c, a.id, r.release_id)["status"] == "failed"
        assert c.delivery.simulator.deliveries() == []
    finally:
        c.close()


def test_takedown_and_metadata_update_of_a_live_release(c: Container) -> None:
    a = Artist(c, "ada@example.com")
    r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
    # A takedown needs a submitted release; before delivery finishes it is accepted too.
    with pytest.raises(NotFound):
        c.releases.takedown(UUID(int=0), r.release_id)
    drive_delivery(c, r.job_id, ("live",))
    upd = c.releases.update_metadata(
        a.id, r.release_id, {"release": {"title": "Night Drive (Deluxe)", "genre": "Pop"}}
    )
    assert upd.kind == "release_update"
    drive_delivery(c, upd.job_id, ("live",))
    meta = release_row(c, a.id, r.release_id)
    assert meta["title"] == "Night Drive (Deluxe)"
    assert meta["genre"] == "Pop"
    assert meta["upc"] == r.upc
    with pytest.raises(ValidationFailed) as e:
        c.releases.update_metadata(a.id, r.release_id, {"release": {"upc": "036000291452"}})
    assert e.value.code == "upc_immutable"
    down = c.releases.takedown(a.id, r.release_id, reason="artist request")
    row = drive_delivery(c, down.job_id, ("taken_down",))
    assert row["kind"] == "release_takedown"
    assert release_row(c, a.id, r.release_id)["status"] == "taken_down"
    with pytest.raises(Conflict):
        c.releases.takedown(a.id, r.release_id)
    assert a.balance() == 9  # updates and takedowns cost nothing


def test_configured_xsd_that_rejects_the_message_fails_the_job(tmp_path: Path) -> None:
    pytest.importorskip("lxml")
    xsd_dir = tmp_path / "xsd"
    xsd_dir.mkdir()
    (xsd_dir / "release-notification.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" '
        'targetNamespace="http://ddex.net/xml/ern/43">'
        '<xs:element name="NewReleaseMessage"><xs:complexType><xs:sequence>'
        '<xs:element name="SomethingWeNeverSend" form="unqualified" type="xs:string"/>'
        '</xs:sequence><xs:anyAttribute processContents="skip"/></xs:complexType>'
        "</xs:element></xs:schema>"
    )
    c = build(
        f"sqlite:///{tmp_path / 'b.db'}",
        tmp_path / "data",
        BACKLINE_DDEX_XSD_DIR=str(xsd_dir),
        BACKLINE_RELEASE_STORES="spotify",
    )
    try:
        a = Artist(c, "ada@example.com")
        r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})
        row = drive_delivery(c, r.job_id, ("failed",))
        assert "ERN invalid" in row["error"]
        assert "SomethingWeNeverSend" in row["error"]
        assert row["stores"]["spotify"]["attempts"] == 1  # not retried: the message is wrong
        assert c.delivery.simulator.deliveries() == []
        assert a.balance() == 10  # nothing reached any store: refunded
    finally:
        c.close()


def test_metadata_update_months_later_keeps_the_original_date(c: Container) -> None:
    a = Artist(c, "ada@example.com")
    r = c.releases.submit(a.id, {"release": a.release(), "tracks": [a.track(a.human)]})

    class Later:
        def now(self) -> datetime:
            return datetime.now(UTC) + timedelta(days=90)

    c.releases.clock = Later()  # the release date (10 days ahead) is now long past
    upd = c.releases.update_metadata(a.id, r.release_id, {"release": {"title": "Remastered"}})
    assert upd.kind == "release_update"
    with pytest.raises(ValidationFailed) as e:
        c.releases.update_metadata(a.id, r.release_id, {"release": {"release_date": "2020-01-01"}})
    assert e.value.details["field"] == "release.release_date"
