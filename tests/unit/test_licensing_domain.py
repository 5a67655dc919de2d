"""Catalog and License domain rules (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from backline.application.demo_catalog import generate_demo_tracks
from backline.domain.catalog import (
    CatalogSequence,
    format_duration,
    format_usdc,
    normalize_key,
    parse_duration,
    parse_usdc,
    tempo_label,
    validate_track,
)
from backline.domain.errors import Conflict, ValidationFailed
from backline.domain.licensing import (
    AmountClaim,
    License,
    sign_document,
    verify_document,
)


def _raw(**overrides: Any) -> dict[str, Any]:
    raw = next(generate_demo_tracks(1))
    raw.update(overrides)
    return raw


def test_usdc_amounts_are_integers() -> None:
    assert parse_usdc("5.00", "p") == 5_000_000
    assert parse_usdc("0.000001", "p") == 1
    assert parse_usdc(7, "p") == 7_000_000
    assert format_usdc(5_000_000) == "5.00"
    assert format_usdc(5_002_500) == "5.0025"
    assert format_usdc(1) == "0.000001"
    for bad in ("5.0000001", "abc", "-1", "0", True, "NaN", "Infinity", None):
        with pytest.raises(ValidationFailed):
            parse_usdc(bad, "p")


def test_keys_tempo_and_duration() -> None:
    assert normalize_key("c minor") == "C Min"
    assert normalize_key("Cm") == "C Min"
    assert normalize_key("G Maj") == "G Maj"
    assert normalize_key("f# major") == "F# Maj"
    assert normalize_key("Bb") == "Bb Maj"
    assert normalize_key("H minor") is None
    assert tempo_label(120) == "Medium (100 - 129 BPM)"
    assert tempo_label(140) == "Medium Fast (130 - 150 BPM)"
    assert parse_duration("3:40") == 220
    assert format_duration(220) == "3:40"


def test_every_demo_track_validates_and_is_marked_demo() -> None:
    for raw in generate_demo_tracks(300):
        spec = validate_track(raw)
        assert spec.demo
        assert spec.external_id.startswith("demo-")
        assert sum(p["share_bps"] for p in spec.payees) == 10_000


@pytest.mark.parametrize(
    "overrides",
    [
        {"external_id": ""},
        {"bpm": 0},
        {"bpm": 301},
        {"bpm": "120"},
        {"key": "Z Maj"},
        {"instrumental": "maybe"},
        {"artists": []},
        {"license_options": {}},
        {"license_options": {"tv": {"price_usdc": "1.00"}}},
        {"license_options": {"social_media": {"price_usdc": "free"}}},
        {"payees": [{"wallet": "0x" + "1" * 40, "share_bps": 5000}]},
        {"payees": [{"wallet": "not-a-wallet", "share_bps": 10000}]},
        {"formats_available": {"mp3": False, "wav": False, "aif": False}},
        {"artwork_url": "javascript:alert(1)"},
        {"title": "x" * 201},
        {"duration": "forever"},
    ],
)
def test_invalid_records_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        validate_track(_raw(**overrides))


def test_sequence_allocates_ranges() -> None:
    seq = CatalogSequence()
    assert seq.allocate(10) == 1
    assert seq.allocate(5) == 11
    assert seq.next_id == 16


def _license(**overrides: Any) -> License:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    kwargs: dict[str, Any] = {
        "track_id": 1,
        "license_type": "social_media",
        "price_units": 5_000_000,
        "amount_units": 5_000_123,
        "paying_wallet": "0x" + "a" * 40,
        "receiving_address": "0x" + "b" * 40,
        "token_contract": "0x" + "c" * 40,
        "chain_id": 8453,
        "chain_instance": "x",
        "created_block": 10,
        "created_at": now,
        "expires_at": now + timedelta(minutes=15),
        "track": {},
        "terms": {},
        "payees": [],
    }
    kwargs.update(overrides)
    return License(**kwargs)


def test_transfer_matching_rule() -> None:
    lic = _license()
    ok = {
        "token": "0x" + "C" * 40,
        "sender": "0x" + "A" * 40,
        "receiver": "0x" + "B" * 40,
        "value": 5_000_123,
        "block_number": 11,
        "block_timestamp": int(lic.expires_at.timestamp()),
    }
    assert lic.accepts_transfer(**ok)
    for change in (
        {"token": "0x" + "d" * 40},
        {"sender": "0x" + "d" * 40},
        {"receiver": "0x" + "d" * 40},
        {"value": 5_000_122},
        {"value": 5_000_124},
        {"value": 5_000_000},
        {"block_number": 10},
        {"block_timestamp": int(lic.expires_at.timestamp()) + 1},
    ):
        assert not lic.accepts_transfer(**{**ok, **change}), change
    assert not _license(paying_wallet=None).accepts_transfer(**ok)


def test_license_lifecycle() -> None:
    lic = _license()
    with pytest.raises(Conflict):
        lic.issue(datetime.now(UTC), {})  # not paid yet
    with pytest.raises(Conflict):
        lic.expire(11, int(lic.expires_at.timestamp()))  # window still open
    with pytest.raises(Conflict):
        lic.record_payment(
            method="transfer",
            payer="p",
            tx_hash="h",
            log_index=0,
            block_number=11,
            block_timestamp=1,
            amount_units=1,
        )
    lic.record_payment(
        method="transfer",
        payer="p",
        tx_hash="h",
        log_index=0,
        block_number=11,
        block_timestamp=1,
        amount_units=5_000_123,
    )
    lic.issue(datetime.now(UTC), {"x": 1})
    assert lic.status == "license_issued"
    with pytest.raises(Conflict):
        lic.expire(99, 2**40)
    expiring = _license()
    expiring.expire(12, int(expiring.expires_at.timestamp()) + 1)
    assert expiring.status == "expired"


def test_amount_claim_is_held_until_released_by_time() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    claim = AmountClaim(
        chain_id=8453,
        token="t",
        receiver="r",
        amount_units=5,
        payment_id=uuid4(),
        hold_until=now + timedelta(hours=1),
    )
    with pytest.raises(Conflict):
        claim.reassign(uuid4(), now + timedelta(hours=2), now)
    new = uuid4()
    claim.reassign(new, now + timedelta(hours=3), now + timedelta(hours=1))
    assert claim.payment_id == new


def test_document_signature() -> None:
    key = b"s" * 32
    doc = sign_document({"license_id": "1", "track": {"id": 1}, "payees": [{"a": 1}]}, key)
    assert verify_document(doc, key)
    assert not verify_document({**doc, "track": {"id": 2}}, key)
    assert not verify_document({**doc, "signature_algorithm": "none"}, key)
    assert not verify_document({k: v for k, v in doc.items() if k != "signature"}, key)
    assert not verify_document(doc, b"t" * 32)
    # Key order does not matter (canonical JSON).
    assert verify_document(dict(reversed(list(doc.items()))), key)
