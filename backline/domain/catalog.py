"""The licensing catalog: tracks offered to agents, their license options and payees.

Pure domain. A :class:`CatalogTrack` is listed once per external id (its aggregate id is
``uuid5(CATALOG_NAMESPACE, external_id)``, so an import is idempotent), and gets a small
public integer id from the :class:`CatalogSequence` saved in the same transaction.
Prices are USDC in 6-decimal integer units, never floats.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import ValidationFailed

CATALOG_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/catalog-track")
SEQUENCE_ID = uuid5(NAMESPACE_URL, "https://backline.dev/ns/catalog-sequence")

USDC_DECIMALS = 6
USDC_UNIT = 10**USDC_DECIMALS
LICENSE_TYPES = ("social_media", "all_digital")
FORMATS = ("mp3", "wav", "aif")

LICENSE_NAMES = {"social_media": "Social Media License", "all_digital": "All Digital License"}
DEFAULT_PERMITTED_USES = {
    "social_media": [
        "Social media posts and stories (YouTube, TikTok, Instagram, Facebook, X)",
        "Podcasts and livestreams",
        "Personal and creator content with monetisation",
    ],
    "all_digital": [
        "All social media and podcasts",
        "Websites, apps and games",
        "Online advertising and paid digital campaigns",
        "Corporate, educational and event video distributed digitally",
    ],
}
DEFAULT_DESCRIPTIONS = {
    "social_media": "Sync this track in social media content across all platforms.",
    "all_digital": "Sync this track in any digital media, including paid online advertising.",
}

# Tempo labels (the seed's vocabulary) with their BPM ranges.
TEMPO_LABELS: tuple[tuple[str, int, int], ...] = (
    ("Very Slow", 1, 69),
    ("Slow", 70, 99),
    ("Medium", 100, 129),
    ("Medium Fast", 130, 150),
    ("Fast", 151, 179),
    ("Very Fast", 180, 300),
)

NOTE_NAMES = (
    "C",
    "C#",
    "Db",
    "D",
    "D#",
    "Eb",
    "E",
    "F",
    "F#",
    "Gb",
    "G",
    "G#",
    "Ab",
    "A",
    "A#",
    "Bb",
    "B",
)
_KEY_RE = re.compile(
    r"^\s*([A-Ga-g])\s*(#|b|♯|♭|sharp|flat)?\s*"
    r"(maj(?:or)?|min(?:or)?|m)?\s*$",
    re.IGNORECASE,
)

MAX_TEXT = 200
MAX_LABEL = 100
MAX_DESCRIPTION = 2000
MAX_URL = 2048
_WALLET_RE = re.compile(r"^0x[a-fA-F0-9]{40}$")


def tempo_label(bpm: int) -> str:
    for name, low, high in TEMPO_LABELS:
        if low <= bpm <= high:
            return f"{name} ({low} - {high} BPM)"
    raise ValidationFailed("bpm must be between 1 and 300.", code="invalid_field", field="bpm")


def tempo_name(label: str) -> str:
    """``"Medium Fast (130 - 150 BPM)"`` → ``"medium fast"`` (for matching)."""
    return label.split("(", 1)[0].strip().lower()


def normalize_key(raw: str) -> str | None:
    """``"c minor"``, ``"Cm"``, ``"C Min"`` → ``"C Min"``; ``"G major"`` → ``"G Maj"``."""
    m = _KEY_RE.match(raw or "")
    if not m:
        return None
    note = m.group(1).upper()
    acc = (m.group(2) or "").lower()
    if acc in ("#", "♯", "sharp"):
        note += "#"
    elif acc in ("b", "♭", "flat"):
        note += "b"
    quality = (m.group(3) or "maj").lower()
    if m.group(3) == "m" or quality.startswith("min"):
        return f"{note} Min"
    return f"{note} Maj"


def parse_usdc(value: Any, field: str) -> int:
    """A decimal USDC amount (``"5.00"``, ``5``) → integer 6-decimal units."""
    if isinstance(value, bool):
        raise ValidationFailed(
            f"{field} must be a decimal string.", code="invalid_field", field=field
        )
    if isinstance(value, int):
        units: int = int(value) * USDC_UNIT
    else:
        try:
            dec = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise ValidationFailed(
                f"{field} is not a decimal amount.", code="invalid_field", field=field
            ) from None
        if not dec.is_finite() or dec != dec.quantize(Decimal(1).scaleb(-USDC_DECIMALS)):
            raise ValidationFailed(
                f"{field} has more than 6 decimals.", code="invalid_field", field=field
            )
        units = int(dec * USDC_UNIT)  # exact: at most 6 decimals
    if units <= 0 or units > 1_000_000 * USDC_UNIT:
        raise ValidationFailed(
            f"{field} must be between 0.000001 and 1000000 USDC.", code="invalid_field", field=field
        )
    return units


def format_usdc(units: int) -> str:
    """Integer units → ``"5.00"`` (at least two decimals, no float rounding)."""
    whole, frac = divmod(units, USDC_UNIT)
    text = f"{frac:06d}".rstrip("0")
    return f"{whole}.{text.ljust(2, '0')}"


def _text(
    raw: dict[str, Any],
    name: str,
    *,
    required: bool = False,
    max_len: int = MAX_LABEL,
    default: str = "",
) -> str:
    value = raw.get(name)
    if value is None or value == "":
        if required:
            raise ValidationFailed(f"{name} is required.", code="invalid_field", field=name)
        return default
    if not isinstance(value, str):
        raise ValidationFailed(f"{name} must be a string.", code="invalid_field", field=name)
    cleaned = unicodedata.normalize("NFC", value).strip()
    if len(cleaned) > max_len:
        raise ValidationFailed(
            f"{name} must be at most {max_len} characters.", code="invalid_field", field=name
        )
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise ValidationFailed(
            f"{name} must not contain control characters.", code="invalid_field", field=name
        )
    return cleaned


def _url(raw: dict[str, Any], name: str) -> str:
    value = _text(raw, name, max_len=MAX_URL)
    if value and not value.startswith(("https://", "http://")):
        raise ValidationFailed(f"{name} must be an http(s) URL.", code="invalid_field", field=name)
    return value


def parse_duration(value: Any) -> int:
    """``"3:40"`` or seconds → seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and re.fullmatch(r"\d{1,3}:\d{2}", value.strip()):
        minutes, secs = value.strip().split(":")
        seconds = int(minutes) * 60 + int(secs)
    else:
        raise ValidationFailed(
            "duration must be seconds or m:ss.", code="invalid_field", field="duration"
        )
    if not 1 <= seconds <= 6 * 3600:
        raise ValidationFailed("duration is out of range.", code="invalid_field", field="duration")
    return seconds


def format_duration(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass(frozen=True)
class TrackSpec:
    """A validated catalog entry, ready to be listed."""

    external_id: str
    title: str
    duration_seconds: int
    artists: list[dict[str, Any]]
    genre: str
    subgenre: str
    additional_genres: list[str]
    mood: str
    tempo: str
    bpm: int
    key: str
    instrumental: bool
    keywords: str | None
    description: str
    artwork_url: str
    preview_url: str
    formats: dict[str, bool]
    license_options: dict[str, dict[str, Any]]
    payees: list[dict[str, Any]]
    demo: bool

    def as_event_kwargs(self) -> dict[str, Any]:
        return dict(vars(self))


def _license_option(kind: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValidationFailed(
            f"license_options.{kind} must be an object.",
            code="invalid_field",
            field=f"license_options.{kind}",
        )
    if (
        "price_units" in raw
        and isinstance(raw["price_units"], int)
        and not isinstance(raw["price_units"], bool)
    ):
        units = int(raw["price_units"])
        if units <= 0:
            raise ValidationFailed(
                "price must be positive.",
                code="invalid_field",
                field=f"license_options.{kind}.price_usdc",
            )
    else:
        units = parse_usdc(raw.get("price_usdc"), f"license_options.{kind}.price_usdc")
    uses = raw.get("permitted_uses", DEFAULT_PERMITTED_USES[kind])
    if not isinstance(uses, list) or not all(isinstance(u, str) and u.strip() for u in uses):
        raise ValidationFailed(
            "permitted_uses must be a list of strings.",
            code="invalid_field",
            field=f"license_options.{kind}",
        )
    return {
        "id": kind,
        "name": _text(raw, "name", default=LICENSE_NAMES[kind]),
        "description": _text(
            raw, "description", max_len=MAX_DESCRIPTION, default=DEFAULT_DESCRIPTIONS[kind]
        ),
        "price_units": units,
        "term": _text(raw, "term", default="perpetual"),
        "exclusivity": _text(raw, "exclusivity", default="non-exclusive"),
        "territories": _text(raw, "territories", default="worldwide"),
        "permitted_uses": [u.strip()[:MAX_TEXT] for u in uses][:20],
    }


def validate_payees(raw: Any) -> list[dict[str, Any]]:
    """Payees split 100% (10,000 basis points) between wallets."""
    if not isinstance(raw, list) or not raw:
        raise ValidationFailed(
            "payees must be a non-empty list.", code="invalid_field", field="payees"
        )
    payees: list[dict[str, Any]] = []
    total = 0
    for i, p in enumerate(raw):
        if not isinstance(p, dict):
            raise ValidationFailed(
                "payee must be an object.", code="invalid_field", field=f"payees[{i}]"
            )
        wallet = p.get("wallet")
        if not isinstance(wallet, str) or not _WALLET_RE.match(wallet):
            raise ValidationFailed(
                "payee wallet must be a 0x address.",
                code="invalid_field",
                field=f"payees[{i}].wallet",
            )
        bps = p.get("share_bps")
        if bps is None and "share_percent" in p:
            try:
                bps = int(Decimal(str(p["share_percent"])) * 100)
            except InvalidOperation:
                bps = None
        if not isinstance(bps, int) or isinstance(bps, bool) or not 1 <= bps <= 10_000:
            raise ValidationFailed(
                "payee share_bps must be 1..10000.",
                code="invalid_field",
                field=f"payees[{i}].share_bps",
            )
        total += bps
        payees.append(
            {
                "name": _text(p, "name"),
                "role": _text(p, "role", default="artist"),
                "wallet": wallet,
                "share_bps": bps,
            }
        )
    if total != 10_000:
        raise ValidationFailed(
            "payee shares must add up to 100% (10000 bps).", code="invalid_field", field="payees"
        )
    return payees


def validate_track(raw: Any, *, demo: bool = False) -> TrackSpec:
    """Validate one catalog record (an import line or an opt-in) into a :class:`TrackSpec`."""
    if not isinstance(raw, dict):
        raise ValidationFailed("track must be an object.", code="invalid_field", field="track")
    external_id = _text(raw, "external_id", required=True, max_len=200)
    bpm = raw.get("bpm")
    if not isinstance(bpm, int) or isinstance(bpm, bool) or not 1 <= bpm <= 300:
        raise ValidationFailed("bpm must be an integer 1..300.", code="invalid_field", field="bpm")
    key_raw = _text(raw, "key", required=True, max_len=20)
    key = normalize_key(key_raw)
    if key is None:
        raise ValidationFailed(
            "key is not a musical key (e.g. 'C Min', 'G Maj').", code="invalid_field", field="key"
        )
    instrumental = raw.get("instrumental")
    if isinstance(instrumental, str) and instrumental in ("Yes", "No"):
        instrumental = instrumental == "Yes"
    if not isinstance(instrumental, bool):
        raise ValidationFailed(
            "instrumental must be a boolean.", code="invalid_field", field="instrumental"
        )
    artists_raw = raw.get("artists")
    if not isinstance(artists_raw, list) or not artists_raw:
        raise ValidationFailed(
            "artists must be a non-empty list.", code="invalid_field", field="artists"
        )
    artists: list[dict[str, Any]] = []
    for i, a in enumerate(artists_raw):
        if isinstance(a, str):
            a = {"name": a}
        if not isinstance(a, dict):
            raise ValidationFailed(
                "artist must be an object.", code="invalid_field", field=f"artists[{i}]"
            )
        artist_id = a.get("id", 0)
        if not isinstance(artist_id, int) or isinstance(artist_id, bool) or artist_id < 0:
            raise ValidationFailed(
                "artist id must be a non-negative integer.",
                code="invalid_field",
                field=f"artists[{i}].id",
            )
        artists.append({"id": artist_id, "name": _text(a, "name", required=True)})
    additional = raw.get("additional_genres", [])
    if not isinstance(additional, list) or not all(isinstance(g, str) for g in additional):
        raise ValidationFailed(
            "additional_genres must be a list of strings.",
            code="invalid_field",
            field="additional_genres",
        )
    formats_raw = raw.get("formats_available", {"mp3": True, "wav": True, "aif": False})
    if not isinstance(formats_raw, dict):
        raise ValidationFailed(
            "formats_available must be an object.", code="invalid_field", field="formats_available"
        )
    formats = {f: bool(formats_raw.get(f, False)) for f in FORMATS}
    if not any(formats.values()):
        raise ValidationFailed(
            "at least one format must be available.",
            code="invalid_field",
            field="formats_available",
        )
    options_raw = raw.get("license_options")
    if not isinstance(options_raw, dict) or not options_raw:
        raise ValidationFailed(
            "license_options is required.", code="invalid_field", field="license_options"
        )
    unknown = set(options_raw) - set(LICENSE_TYPES)
    if unknown:
        raise ValidationFailed(
            f"unknown license type {sorted(unknown)[0]!r}.",
            code="invalid_field",
            field="license_options",
        )
    options = {k: _license_option(k, v) for k, v in options_raw.items()}
    keywords = _text(raw, "keywords", max_len=MAX_TEXT) or None
    tempo = _text(raw, "tempo") or tempo_label(bpm)
    return TrackSpec(
        external_id=external_id,
        title=_text(raw, "title", required=True, max_len=MAX_TEXT),
        duration_seconds=parse_duration(raw.get("duration")),
        artists=artists,
        genre=_text(raw, "genre", required=True),
        subgenre=_text(raw, "subgenre"),
        additional_genres=[g.strip()[:MAX_LABEL] for g in additional if g.strip()][:10],
        mood=_text(raw, "mood"),
        tempo=tempo,
        bpm=bpm,
        key=key,
        instrumental=instrumental,
        keywords=keywords,
        description=_text(raw, "description", max_len=MAX_DESCRIPTION),
        artwork_url=_url(raw, "artwork_url"),
        preview_url=_url(raw, "preview_url"),
        formats=formats,
        license_options=options,
        payees=validate_payees(raw.get("payees")),
        demo=bool(raw.get("demo", demo)),
    )


def track_aggregate_id(external_id: str) -> UUID:
    return uuid5(CATALOG_NAMESPACE, external_id)


class CatalogTrack(Aggregate):
    """A track offered for licensing."""

    TOPIC = "backline.CatalogTrack"

    class Created(Aggregate.Created):
        TOPIC = "backline.CatalogTrack.Created"

    class Event(Aggregate.Event):
        pass

    class Listed(Created):
        TOPIC = "backline.CatalogTrack.Listed"
        track_id: int
        external_id: str
        title: str
        duration_seconds: int
        artists: list[dict[str, Any]]
        genre: str
        subgenre: str
        additional_genres: list[str]
        mood: str
        tempo: str
        bpm: int
        key: str
        instrumental: bool
        keywords: str | None
        description: str
        artwork_url: str
        preview_url: str
        formats: dict[str, bool]
        license_options: dict[str, dict[str, Any]]
        payees: list[dict[str, Any]]
        demo: bool
        source: str

    @staticmethod
    def create_id(external_id: str, **_: Any) -> UUID:
        return track_aggregate_id(external_id)

    @event(Listed)
    def __init__(
        self,
        track_id: int,
        external_id: str,
        title: str,
        duration_seconds: int,
        artists: list[dict[str, Any]],
        genre: str,
        subgenre: str,
        additional_genres: list[str],
        mood: str,
        tempo: str,
        bpm: int,
        key: str,
        instrumental: bool,
        keywords: str | None,
        description: str,
        artwork_url: str,
        preview_url: str,
        formats: dict[str, bool],
        license_options: dict[str, dict[str, Any]],
        payees: list[dict[str, Any]],
        demo: bool,
        source: str,
    ) -> None:
        self.track_id = track_id
        self.external_id = external_id
        self.title = title
        self.artists = artists
        self.formats = formats
        self.license_options = license_options
        self.payees = payees
        self.listed = True

    class Unlisted(Event):
        TOPIC = "backline.CatalogTrack.Unlisted"

    @event(Unlisted)
    def _unlisted(self) -> None:
        self.listed = False

    def unlist(self) -> None:
        if self.listed:
            self._unlisted()

    class Relisted(Event):
        TOPIC = "backline.CatalogTrack.Relisted"

    @event(Relisted)
    def _relisted(self) -> None:
        self.listed = True

    def relist(self) -> None:
        if not self.listed:
            self._relisted()

    def price_units(self, license_type: str) -> int:
        option = self.license_options.get(license_type)
        if option is None:
            raise ValidationFailed(
                "This track is not offered under that license type.",
                code="license_type_unavailable",
                field="license_type",
            )
        return int(option["price_units"])


class CatalogSequence(Aggregate):
    """Hands out the catalog's public integer track ids in ranges."""

    TOPIC = "backline.CatalogSequence"

    class Created(Aggregate.Created):
        TOPIC = "backline.CatalogSequence.Created"

    class Event(Aggregate.Event):
        pass

    class Started(Created):
        TOPIC = "backline.CatalogSequence.Started"

    @staticmethod
    def create_id() -> UUID:
        return SEQUENCE_ID

    @event(Started)
    def __init__(self) -> None:
        self.next_id = 1

    class Allocated(Event):
        TOPIC = "backline.CatalogSequence.Allocated"
        start: int
        count: int

    @event(Allocated)
    def _allocated(self, start: int, count: int) -> None:
        self.next_id = start + count

    def allocate(self, count: int) -> int:
        if count <= 0:
            raise ValidationFailed("count must be positive.", code="invalid_field")
        start = self.next_id
        self._allocated(start=start, count=count)
        return start
