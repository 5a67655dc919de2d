"""DDEX ERN 4.3 ``NewReleaseMessage``: build it from a submitted release, check it.

The message carries what a store ingests: the ``MessageHeader`` (sender, recipient,
ids, time), the ``PartyList`` (artists, writers, label), the ``ResourceList`` (one
``SoundRecording`` per track with its ISRC, duration, explicit flag, writers and the
audio file's technical details and SHA-256; one ``Image`` for the front cover), the
``ReleaseList`` (the main ``Release`` with its UPC as ``ICPN``, type, genre, date,
P/C lines and resource group, plus one ``TrackRelease`` per track) and the
``DealList`` (worldwide streaming and download deals from the release date; a takedown
sends the same deals with ``TakeDown``).

:func:`check_required` verifies the standard's required elements and that every
reference resolves. The official XSD cannot be downloaded here; when a directory
holding it is configured (``BACKLINE_DDEX_XSD_DIR`` with ``release-notification.xsd``)
:func:`validate_xsd` validates against it (needs ``lxml``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

ERN_NS = "http://ddex.net/xml/ern/43"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
AVS_VERSION = "4"
SCHEMA_FILE = "release-notification.xsd"
SCHEMA_LOCATION = f"{ERN_NS} http://ddex.net/xml/ern/43/{SCHEMA_FILE}"

ET.register_namespace("ern", ERN_NS)
ET.register_namespace("xsi", XSI_NS)

# What each deal offers (CommercialModelType → UseTypes).
DEALS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("SubscriptionModel", ("OnDemandStream", "NonInteractiveStream")),
    ("AdvertisementSupportedModel", ("OnDemandStream", "NonInteractiveStream")),
    ("PayAsYouGoModel", ("PermanentDownload",)),
)


class ErnInvalid(Exception):
    """The message lacks a required element or a reference does not resolve."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Party:
    dpid: str
    name: str


@dataclass(frozen=True)
class MessageContext:
    message_id: str
    thread_id: str
    created: datetime
    sender: Party
    recipient: Party
    takedown: bool = False
    update: bool = False
    test: bool = False


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration as DDEX writes it: ``PT3M20S`` (whole seconds, at least 1)."""
    total = max(1, round(seconds))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m or h else "") + f"{s}S"


def _q(tag: str) -> str:
    return tag  # DDEX ERN 4 children are unqualified (elementFormDefault="unqualified")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, _q(tag), attrs)
    if text is not None:
        el.text = text
    return el


def _party_ref(kind: str, n: int) -> str:
    return f"P{kind}{n}"


def _codec(fmt: str) -> str:
    return {"WAV": "PCM", "AIFF": "PCM", "FLAC": "FLAC", "MP3": "MP3"}.get(fmt.upper(), "Unknown")


def build_new_release_message(
    ctx: MessageContext,
    release: Mapping[str, Any],
    tracks: Sequence[Mapping[str, Any]],
) -> bytes:
    """The ERN 4.3 NewReleaseMessage for a validated, identified release (UTF-8 XML)."""
    root = ET.Element(
        f"{{{ERN_NS}}}NewReleaseMessage",
        {
            "AvsVersionId": AVS_VERSION,
            "LanguageAndScriptCode": str(release.get("language") or "en"),
            f"{{{XSI_NS}}}schemaLocation": SCHEMA_LOCATION,
        },
    )
    header = _sub(root, "MessageHeader")
    _sub(header, "MessageThreadId", ctx.thread_id)
    _sub(header, "MessageId", ctx.message_id)
    for tag, party in (("MessageSender", ctx.sender), ("MessageRecipient", ctx.recipient)):
        el = _sub(header, tag)
        _sub(el, "PartyId", party.dpid)
        _sub(_sub(el, "PartyName"), "FullName", party.name)
    _sub(header, "MessageCreatedDateTime", ctx.created.isoformat(timespec="seconds"))
    _sub(header, "MessageControlType", "TestMessage" if ctx.test else "LiveMessage")

    # -- parties: artists, writers, label (deduplicated by name and role family) --------
    parties = _sub(root, "PartyList")
    refs: dict[tuple[str, str], str] = {}

    def party_ref(kind: str, name: str) -> str:
        key = (kind, name)
        if key not in refs:
            ref = _party_ref(kind, len([k for k in refs if k[0] == kind]) + 1)
            refs[key] = ref
            p = _sub(parties, "Party")
            _sub(p, "PartyReference", ref)
            _sub(_sub(p, "PartyName"), "FullName", name)
        return refs[key]

    main_artist = party_ref("Artist", str(release["primary_artist_name"]))
    label = party_ref("Label", str(release.get("label_name") or release["primary_artist_name"]))
    year = str(release["release_date"])[:4]

    # -- resources ------------------------------------------------------------------------
    resources = _sub(root, "ResourceList")
    for n, t in enumerate(tracks, start=1):
        audio = t.get("audio") or {}
        media = audio.get("media") or {}
        sr = _sub(resources, "SoundRecording")
        _sub(sr, "ResourceReference", f"A{n}")
        _sub(sr, "Type", "MusicalWorkSoundRecording")
        edition = _sub(sr, "SoundRecordingEdition")
        _sub(_sub(edition, "ResourceId"), "ISRC", str(t["isrc"]))
        pline = _sub(edition, "PLine")
        _sub(pline, "Year", year)
        _sub(pline, "PLineText", str(release.get("phonographic_line") or ""))
        tech = _sub(edition, "TechnicalDetails")
        _sub(tech, "TechnicalResourceDetailsReference", f"T{n}")
        delivery = _sub(tech, "DeliveryFile")
        _sub(delivery, "Type", "AudioFile")
        _sub(delivery, "AudioCodecType", _codec(str(media.get("format") or "")))
        if media.get("channels"):
            _sub(delivery, "NumberOfChannels", str(int(media["channels"])))
        if media.get("sample_rate"):
            _sub(
                delivery,
                "SamplingRate",
                f"{int(media['sample_rate']) / 1000:g}",
                UnitOfMeasure="kHz",
            )
        if media.get("bit_depth"):
            _sub(delivery, "BitsPerSample", str(int(media["bit_depth"])))
        file_el = _sub(delivery, "File")
        _sub(file_el, "URI", resource_uri(audio))
        hashsum = _sub(file_el, "HashSum")
        _sub(hashsum, "Algorithm", "SHA256")
        _sub(hashsum, "HashSumValue", str(audio.get("sha256") or ""))
        _sub(file_el, "FileSize", str(int(audio.get("size") or 0)))
        title = str(t["title"])
        _sub(sr, "DisplayTitleText", title)
        _sub(_sub(sr, "DisplayTitle"), "TitleText", title)
        artist_name = str(t.get("primary_artist_name") or release["primary_artist_name"])
        _sub(sr, "DisplayArtistName", artist_name)
        da = _sub(sr, "DisplayArtist", SequenceNumber="1")
        _sub(da, "ArtistPartyReference", party_ref("Artist", artist_name))
        _sub(da, "DisplayArtistRole", "MainArtist")
        for w in t.get("writers") or []:
            c = _sub(sr, "Contributor")
            _sub(c, "ContributorPartyReference", party_ref("Writer", str(w["name"])))
            _sub(c, "Role", _writer_role(w.get("role")))
        _sub(sr, "Duration", iso_duration(float(t.get("duration_seconds") or 0)))
        _sub(sr, "ParentalWarningType", "Explicit" if t.get("explicit_flag") else "NotExplicit")

    cover = release.get("cover") or {}
    cover_media = cover.get("media") or {}
    image = _sub(resources, "Image")
    image_ref = f"A{len(tracks) + 1}"
    _sub(image, "ResourceReference", image_ref)
    _sub(image, "Type", "FrontCoverImage")
    _sub(
        _sub(image, "ResourceId"),
        "ProprietaryId",
        str(cover.get("sha256") or "cover"),
        Namespace=ctx.sender.dpid,
    )
    tech = _sub(image, "TechnicalDetails")
    _sub(tech, "TechnicalResourceDetailsReference", f"T{len(tracks) + 1}")
    _sub(tech, "ImageCodecType", str(cover_media.get("format") or "JPEG"))
    if cover_media.get("height"):
        _sub(tech, "ImageHeight", str(int(cover_media["height"])))
    if cover_media.get("width"):
        _sub(tech, "ImageWidth", str(int(cover_media["width"])))
    file_el = _sub(tech, "File")
    _sub(file_el, "URI", resource_uri(cover))
    hashsum = _sub(file_el, "HashSum")
    _sub(hashsum, "Algorithm", "SHA256")
    _sub(hashsum, "HashSumValue", str(cover.get("sha256") or ""))

    # -- releases -------------------------------------------------------------------------
    releases = _sub(root, "ReleaseList")
    main = _sub(releases, "Release")
    _sub(main, "ReleaseReference", "R0")
    _sub(main, "ReleaseType", str(release.get("release_type") or "Single"))
    _sub(_sub(main, "ReleaseId"), "ICPN", str(release["upc"]))
    _sub(main, "DisplayTitleText", str(release["title"]))
    _sub(_sub(main, "DisplayTitle"), "TitleText", str(release["title"]))
    _sub(main, "DisplayArtistName", str(release["primary_artist_name"]))
    da = _sub(main, "DisplayArtist", SequenceNumber="1")
    _sub(da, "ArtistPartyReference", main_artist)
    _sub(da, "DisplayArtistRole", "MainArtist")
    _sub(main, "ReleaseLabelReference", label)
    pline = _sub(main, "PLine")
    _sub(pline, "Year", year)
    _sub(pline, "PLineText", str(release.get("phonographic_line") or ""))
    cline = _sub(main, "CLine")
    _sub(cline, "Year", year)
    _sub(cline, "CLineText", str(release.get("copyright_line") or ""))
    total = sum(float(t.get("duration_seconds") or 0) for t in tracks)
    _sub(main, "Duration", iso_duration(total))
    _sub(_sub(main, "Genre"), "GenreText", str(release["genre"]))
    _sub(main, "OriginalReleaseDate", str(release["release_date"]))
    _sub(main, "ParentalWarningType", "Explicit" if release.get("explicit") else "NotExplicit")
    group = _sub(main, "ResourceGroup")
    for n, _t in enumerate(tracks, start=1):
        item = _sub(group, "ResourceGroupContentItem")
        _sub(item, "SequenceNumber", str(n))
        _sub(item, "ReleaseResourceReference", f"A{n}")
    _sub(group, "LinkedReleaseResourceReference", image_ref)
    for n, t in enumerate(tracks, start=1):
        tr = _sub(releases, "TrackRelease")
        _sub(tr, "ReleaseReference", f"R{n}")
        _sub(_sub(tr, "ReleaseId"), "ISRC", str(t["isrc"]))
        _sub(tr, "ReleaseResourceReference", f"A{n}")
        _sub(tr, "ReleaseLabelReference", label)
        _sub(_sub(tr, "Genre"), "GenreText", str(release["genre"]))

    # -- deals ----------------------------------------------------------------------------
    deals = _sub(root, "DealList")
    for ref in ["R0", *[f"R{n}" for n in range(1, len(tracks) + 1)]]:
        rd = _sub(deals, "ReleaseDeal")
        _sub(rd, "DealReleaseReference", ref)
        for model, uses in DEALS:
            terms = _sub(_sub(rd, "Deal"), "DealTerms")
            _sub(terms, "TerritoryCode", "Worldwide")
            _sub(_sub(terms, "ValidityPeriod"), "StartDate", str(release["release_date"]))
            _sub(terms, "CommercialModelType", model)
            for use in uses:
                _sub(terms, "UseType", use)
            if ctx.takedown:
                _sub(terms, "TakeDown", "true")
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out


def _writer_role(role: object) -> str:
    known = {"composer": "Composer", "lyricist": "Lyricist", "composerlyricist": "ComposerLyricist"}
    if isinstance(role, str):
        return known.get(role.replace(" ", "").replace("_", "").lower(), "ComposerLyricist")
    return "ComposerLyricist"


def resource_uri(file_view: Mapping[str, Any]) -> str:
    """Where the resource sits in the delivery batch: ``resources/<sha256>.<ext>``."""
    sha = str(file_view.get("sha256") or "missing")
    url = str(file_view.get("url") or "")
    ext = url.rsplit(".", 1)[1].lower() if "." in url.rsplit("/", 1)[-1] else "bin"
    return f"resources/{sha}.{ext}"


# -- checks -----------------------------------------------------------------------------------

REQUIRED: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "MessageHeader",
        (
            "MessageId",
            "MessageSender/PartyId",
            "MessageSender/PartyName/FullName",
            "MessageRecipient/PartyId",
            "MessageCreatedDateTime",
        ),
    ),
    ("PartyList/Party", ("PartyReference", "PartyName/FullName")),
    (
        "ResourceList/SoundRecording",
        (
            "ResourceReference",
            "Type",
            "SoundRecordingEdition/ResourceId/ISRC",
            "SoundRecordingEdition/TechnicalDetails/DeliveryFile/File/URI",
            "DisplayTitleText",
            "DisplayTitle/TitleText",
            "DisplayArtistName",
            "DisplayArtist/ArtistPartyReference",
            "DisplayArtist/DisplayArtistRole",
            "Duration",
            "ParentalWarningType",
        ),
    ),
    ("ResourceList/Image", ("ResourceReference", "Type", "ResourceId")),
    (
        "ReleaseList/Release",
        (
            "ReleaseReference",
            "ReleaseType",
            "ReleaseId/ICPN",
            "DisplayTitleText",
            "DisplayTitle/TitleText",
            "DisplayArtistName",
            "DisplayArtist/ArtistPartyReference",
            "ReleaseLabelReference",
            "Genre/GenreText",
            "ParentalWarningType",
            "ResourceGroup/ResourceGroupContentItem/ReleaseResourceReference",
        ),
    ),
    (
        "DealList/ReleaseDeal",
        (
            "DealReleaseReference",
            "Deal/DealTerms/TerritoryCode",
            "Deal/DealTerms/CommercialModelType",
            "Deal/DealTerms/UseType",
            "Deal/DealTerms/ValidityPeriod/StartDate",
        ),
    ),
)


def parse(message: bytes) -> ET.Element:
    return ET.fromstring(message)  # noqa: S314 - our own output, never untrusted input


def check_required(message: bytes) -> ET.Element:
    """Raise :class:`ErnInvalid` listing every missing element or dangling reference."""
    root = parse(message)
    problems: list[str] = []
    if root.tag != f"{{{ERN_NS}}}NewReleaseMessage":
        problems.append(f"root is {root.tag}, not ern:NewReleaseMessage")
    for attr in ("AvsVersionId", "LanguageAndScriptCode"):
        if not root.get(attr):
            problems.append(f"NewReleaseMessage/@{attr} missing")
    for where, children in REQUIRED:
        found = root.findall(where)
        if not found:
            problems.append(f"{where} missing")
        for i, el in enumerate(found):
            for child in children:
                node = el.find(child)
                if node is None or (len(node) == 0 and not (node.text or "").strip()):
                    problems.append(f"{where}[{i}]/{child} missing or empty")
    parties = {(p.text or "") for p in root.findall("PartyList/Party/PartyReference")}
    resources = {(r.text or "") for r in root.findall("ResourceList/*/ResourceReference")}
    releases = {(r.text or "") for r in root.findall("ReleaseList/*/ReleaseReference")}
    for el in root.iter():
        text = (el.text or "").strip()
        if el.tag.endswith("PartyReference") and el.tag != "PartyReference" and text not in parties:
            problems.append(f"{el.tag} {text!r} names no party")
        if el.tag.endswith("ReleaseResourceReference") and text not in resources:
            problems.append(f"{el.tag} {text!r} names no resource")
        if el.tag == "ReleaseLabelReference" and text not in parties:
            problems.append(f"ReleaseLabelReference {text!r} names no party")
        if el.tag == "DealReleaseReference" and text not in releases:
            problems.append(f"DealReleaseReference {text!r} names no release")
    if problems:
        raise ErnInvalid(problems)
    return root


def validate_xsd(message: bytes, xsd_dir: Path) -> None:
    """Validate against the official ERN 4.3 XSD in ``xsd_dir`` (raises ErnInvalid)."""
    schema_path = xsd_dir / SCHEMA_FILE
    if not schema_path.is_file():
        raise ErnInvalid([f"{schema_path} not found (configure BACKLINE_DDEX_XSD_DIR)"])
    try:
        from lxml import etree
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ErnInvalid(["XSD validation needs lxml: pip install lxml"]) from e
    schema = etree.XMLSchema(etree.parse(str(schema_path)))
    doc = etree.fromstring(message)
    if not schema.validate(doc):
        raise ErnInvalid([str(err) for err in list(schema.error_log)[:20]])
