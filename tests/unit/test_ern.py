"""DDEX ERN 4.3 NewReleaseMessage: built from a release, parsed back element by element."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backline.application.ern import (
    ERN_NS,
    ErnInvalid,
    MessageContext,
    Party,
    build_new_release_message,
    check_required,
    iso_duration,
    validate_xsd,
)

RELEASE: dict[str, Any] = {
    "title": "Night Drive",
    "primary_artist_name": "Ada & The Engines",
    "genre": "Electronic",
    "release_date": "2026-12-01",
    "upc": "036000291452",
    "label_name": "Engine Records",
    "copyright_line": "2026 Engine Records",
    "phonographic_line": "2026 Engine Records",
    "release_type": "Single",
    "explicit": True,
    "cover": {
        "url": "/api/files/cover-art/u/cover.png",
        "sha256": "c" * 64,
        "size": 12345,
        "media": {"format": "PNG", "width": 3000, "height": 3000},
    },
}
TRACKS: list[dict[str, Any]] = [
    {
        "title": "Intro",
        "primary_artist_name": "Ada & The Engines",
        "isrc": "ZZBLN2600001",
        "explicit_flag": False,
        "writers": [{"name": "Ada Lovelace"}, {"name": "Charles Babbage", "role": "lyricist"}],
        "duration_seconds": 65.4,
        "audio": {
            "url": "/api/files/audio/u/intro.wav",
            "sha256": "a" * 64,
            "size": 111,
            "media": {"format": "WAV", "sample_rate": 44100, "bit_depth": 24, "channels": 2},
        },
    },
    {
        "title": "Highway",
        "primary_artist_name": "Guest Star",
        "isrc": "ZZBLN2600017",
        "explicit_flag": True,
        "writers": [{"name": "Ada Lovelace"}],
        "duration_seconds": 201,
        "audio": {
            "url": "/api/files/audio/u/highway.flac",
            "sha256": "b" * 64,
            "size": 222,
            "media": {"format": "FLAC", "sample_rate": 48000, "bit_depth": 16, "channels": 2},
        },
    },
]
CTX = MessageContext(
    message_id="job-1:spotify",
    thread_id="job-1",
    created=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
    sender=Party("PADPIDA00BACKLINE0", "Backline"),
    recipient=Party("PADPIDA0123456789A", "spotify"),
)


def text(el: ET.Element, path: str) -> str:
    node = el.find(path)
    assert node is not None, path
    return (node.text or "").strip()


def test_message_parses_back_element_by_element() -> None:
    xml = build_new_release_message(CTX, RELEASE, TRACKS)
    root = check_required(xml)
    assert root.tag == f"{{{ERN_NS}}}NewReleaseMessage"
    assert root.get("AvsVersionId") == "4"
    header = root.find("MessageHeader")
    assert header is not None
    assert text(header, "MessageId") == "job-1:spotify"
    assert text(header, "MessageThreadId") == "job-1"
    assert text(header, "MessageSender/PartyId") == "PADPIDA00BACKLINE0"
    assert text(header, "MessageRecipient/PartyId") == "PADPIDA0123456789A"
    assert text(header, "MessageCreatedDateTime") == "2026-11-21T10:00:00+00:00"
    assert text(header, "MessageControlType") == "LiveMessage"

    parties = {
        text(p, "PartyReference"): text(p, "PartyName/FullName")
        for p in root.findall("PartyList/Party")
    }
    assert sorted(parties.values()) == sorted(
        ["Ada & The Engines", "Engine Records", "Guest Star", "Ada Lovelace", "Charles Babbage"]
    )

    recordings = root.findall("ResourceList/SoundRecording")
    assert len(recordings) == 2
    for n, (sr, track) in enumerate(zip(recordings, TRACKS, strict=True), start=1):
        assert text(sr, "ResourceReference") == f"A{n}"
        assert text(sr, "Type") == "MusicalWorkSoundRecording"
        assert text(sr, "SoundRecordingEdition/ResourceId/ISRC") == track["isrc"]
        assert text(sr, "DisplayTitleText") == track["title"]
        assert text(sr, "DisplayTitle/TitleText") == track["title"]
        assert text(sr, "DisplayArtistName") == track["primary_artist_name"]
        artist_ref = text(sr, "DisplayArtist/ArtistPartyReference")
        assert parties[artist_ref] == track["primary_artist_name"]
        assert text(sr, "DisplayArtist/DisplayArtistRole") == "MainArtist"
        writers = [parties[text(c, "ContributorPartyReference")] for c in sr.findall("Contributor")]
        assert writers == [w["name"] for w in track["writers"]]
        assert text(sr, "ParentalWarningType") == (
            "Explicit" if track["explicit_flag"] else "NotExplicit"
        )
        assert text(sr, "Duration") == iso_duration(track["duration_seconds"])
        delivery = sr.find("SoundRecordingEdition/TechnicalDetails/DeliveryFile")
        assert delivery is not None
        media = track["audio"]["media"]
        assert text(delivery, "NumberOfChannels") == str(media["channels"])
        assert float(text(delivery, "SamplingRate")) * 1000 == media["sample_rate"]
        assert text(delivery, "BitsPerSample") == str(media["bit_depth"])
        assert text(delivery, "File/HashSum/HashSumValue") == track["audio"]["sha256"]
        assert text(delivery, "File/URI").startswith("resources/" + track["audio"]["sha256"])
    assert [text(c, "Role") for c in recordings[0].findall("Contributor")] == [
        "ComposerLyricist",
        "Lyricist",
    ]
    image = root.find("ResourceList/Image")
    assert image is not None
    assert text(image, "Type") == "FrontCoverImage"
    assert text(image, "TechnicalDetails/ImageWidth") == "3000"

    main = root.find("ReleaseList/Release")
    assert main is not None
    assert text(main, "ReleaseId/ICPN") == RELEASE["upc"]
    assert text(main, "ReleaseType") == "Single"
    assert text(main, "DisplayTitleText") == RELEASE["title"]
    assert text(main, "DisplayArtistName") == RELEASE["primary_artist_name"]
    assert parties[text(main, "ReleaseLabelReference")] == "Engine Records"
    assert text(main, "Genre/GenreText") == "Electronic"
    assert text(main, "OriginalReleaseDate") == "2026-12-01"
    assert text(main, "ParentalWarningType") == "Explicit"
    assert text(main, "PLine/Year") == "2026"
    assert text(main, "CLine/CLineText") == "2026 Engine Records"
    assert text(main, "Duration") == iso_duration(65.4 + 201)
    items = main.findall("ResourceGroup/ResourceGroupContentItem")
    assert [text(i, "ReleaseResourceReference") for i in items] == ["A1", "A2"]
    assert [text(i, "SequenceNumber") for i in items] == ["1", "2"]
    assert text(main, "ResourceGroup/LinkedReleaseResourceReference") == "A3"
    track_releases = root.findall("ReleaseList/TrackRelease")
    assert [text(t, "ReleaseId/ISRC") for t in track_releases] == [t["isrc"] for t in TRACKS]

    deals = root.findall("DealList/ReleaseDeal")
    assert [text(d, "DealReleaseReference") for d in deals] == ["R0", "R1", "R2"]
    terms = deals[0].findall("Deal/DealTerms")
    assert [text(t, "CommercialModelType") for t in terms] == [
        "SubscriptionModel",
        "AdvertisementSupportedModel",
        "PayAsYouGoModel",
    ]
    assert all(text(t, "TerritoryCode") == "Worldwide" for t in terms)
    assert all(text(t, "ValidityPeriod/StartDate") == "2026-12-01" for t in terms)
    assert root.find("DealList/ReleaseDeal/Deal/DealTerms/TakeDown") is None


def test_takedown_marks_every_deal() -> None:
    ctx = MessageContext(**{**CTX.__dict__, "takedown": True})
    root = check_required(build_new_release_message(ctx, RELEASE, TRACKS))
    takedowns = root.findall("DealList/ReleaseDeal/Deal/DealTerms/TakeDown")
    assert len(takedowns) == 9
    assert {t.text for t in takedowns} == {"true"}


def test_missing_required_elements_and_dangling_references_are_reported() -> None:
    xml = build_new_release_message(CTX, RELEASE, TRACKS)
    broken = xml.replace(b"<ICPN>036000291452</ICPN>", b"").replace(
        b"<ReleaseResourceReference>A2</ReleaseResourceReference>",
        b"<ReleaseResourceReference>A9</ReleaseResourceReference>",
    )
    with pytest.raises(ErnInvalid) as e:
        check_required(broken)
    problems = " | ".join(e.value.problems)
    assert "ReleaseList/Release[0]/ReleaseId/ICPN missing" in problems
    assert "'A9' names no resource" in problems


def test_iso_durations() -> None:
    assert iso_duration(0) == "PT1S"
    assert iso_duration(59.6) == "PT1M0S"
    assert iso_duration(3725) == "PT1H2M5S"


def test_xsd_validation_needs_the_configured_schema(tmp_path: Path) -> None:
    with pytest.raises(ErnInvalid, match=r"release-notification\.xsd"):
        validate_xsd(build_new_release_message(CTX, RELEASE, TRACKS), tmp_path)


MINI_XSD = """<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
           xmlns:ern="http://ddex.net/xml/ern/43"
           targetNamespace="http://ddex.net/xml/ern/43"
           elementFormDefault="unqualified">
  <xs:element name="NewReleaseMessage">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="MessageHeader">
          <xs:complexType>
            <xs:sequence>
              <xs:element name="MessageThreadId" type="xs:string"/>
              <xs:element name="MessageId" type="xs:string"/>
              <xs:any minOccurs="0" maxOccurs="unbounded" processContents="skip"/>
            </xs:sequence>
          </xs:complexType>
        </xs:element>
        <xs:any minOccurs="0" maxOccurs="unbounded" processContents="skip"/>
      </xs:sequence>
      <xs:attribute name="AvsVersionId" type="xs:string" use="required"/>
      <xs:anyAttribute processContents="skip"/>
    </xs:complexType>
  </xs:element>
</xs:schema>
"""


def test_xsd_validation_runs_against_the_configured_schema(tmp_path: Path) -> None:
    """The mechanism, with a small stand-in schema (the official one cannot be fetched)."""
    pytest.importorskip("lxml")
    (tmp_path / "release-notification.xsd").write_text(MINI_XSD)
    xml = build_new_release_message(CTX, RELEASE, TRACKS)
    validate_xsd(xml, tmp_path)
    broken = xml.replace(b"<MessageThreadId>job-1</MessageThreadId>", b"")
    with pytest.raises(ErnInvalid) as e:
        validate_xsd(broken, tmp_path)
    assert "MessageThreadId" in " ".join(e.value.problems)
