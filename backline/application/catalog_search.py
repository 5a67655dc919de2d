"""Catalog search parameters: parsing and bounds (seed 004, ``GET /catalog/search``).

Pure and total: :func:`parse_search_params` either returns :class:`SearchParams` or raises
``ValidationFailed`` whose ``details["errors"]`` maps each bad field to its messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from backline.domain.catalog import LICENSE_TYPES
from backline.domain.errors import ValidationFailed

STRING_LIMITS: dict[str, int] = {
    "genre": 100,
    "subgenre": 100,
    "additional": 100,
    "mood": 100,
    "tempo": 100,
    "key": 20,
    "keywords": 200,
    "description": 200,
}
INT_BOUNDS: dict[str, tuple[int, int | None]] = {
    "bpm_min": (1, 300),
    "bpm_max": (1, 300),
    "per_page": (1, 50),
    "page": (1, None),
}
ENUMS: dict[str, tuple[str, ...]] = {
    "instrumental": ("Yes", "No"),
    "license_type": LICENSE_TYPES,
}
KNOWN = frozenset(STRING_LIMITS) | frozenset(INT_BOUNDS) | frozenset(ENUMS)
MAX_PAGE = 1_000_000
_INT_RE = re.compile(r"^[+]?\d{1,9}$")

# Dropped from description/keywords before matching (both backends agree on them).
STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "need",
        "of",
        "on",
        "or",
        "our",
        "the",
        "this",
        "to",
        "track",
        "tracks",
        "music",
        "song",
        "songs",
        "something",
        "some",
        "that",
        "with",
        "we",
        "want",
        "looking",
    ]
)
_WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)


def search_words(text: str | None, *, limit: int = 12) -> list[str]:
    """Lower-case word tokens (letters/digits), stop words dropped, de-duplicated."""
    if not text:
        return []
    out: list[str] = []
    for w in _WORD_RE.findall(text.lower()):
        if w in STOP_WORDS or w in out:
            continue
        out.append(w[:40])
        if len(out) >= limit:
            break
    return out


@dataclass(frozen=True)
class SearchParams:
    genre: str | None = None
    subgenre: str | None = None
    additional: str | None = None
    mood: str | None = None
    tempo: str | None = None
    bpm_min: int | None = None
    bpm_max: int | None = None
    key: str | None = None
    instrumental: str | None = None
    keywords: str | None = None
    description: str | None = None
    license_type: str | None = None
    per_page: int = 20
    page: int = 1

    def filters(self) -> dict[str, Any]:
        """The parameters that were given (no paging, no defaults)."""
        return {
            k: v for k, v in asdict(self).items() if v is not None and k not in ("per_page", "page")
        }

    def as_query(self) -> dict[str, Any]:
        out = self.filters()
        out["per_page"] = self.per_page
        out["page"] = self.page
        return out


def _label(field: str) -> str:
    return field.replace("_", " ")


def parse_search_params(raw: Mapping[str, Any], *, default_per_page: int = 20) -> SearchParams:
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in KNOWN:
            continue  # unknown query parameters are ignored, as the seed's server does
        if isinstance(value, list):
            value = value[-1] if value else ""
        if value is None:
            continue
        if isinstance(value, bool):
            errors.setdefault(name, []).append(f"The {_label(name)} field is invalid.")
            continue
        if name in STRING_LIMITS:
            if not isinstance(value, str):
                errors.setdefault(name, []).append(f"The {_label(name)} field must be a string.")
                continue
            text = value.strip()
            if len(value) > STRING_LIMITS[name]:
                errors.setdefault(name, []).append(
                    f"The {_label(name)} field must not be greater than "
                    f"{STRING_LIMITS[name]} characters."
                )
                continue
            if any(ord(ch) < 32 for ch in text):
                errors.setdefault(name, []).append(
                    f"The {_label(name)} field must not contain control characters."
                )
                continue
            if text:
                values[name] = text
        elif name in INT_BOUNDS:
            digits = str(value).strip() if isinstance(value, str | int) else None
            if digits is None or not _INT_RE.match(digits):
                errors.setdefault(name, []).append(f"The {_label(name)} field must be an integer.")
                continue
            number = int(digits)
            low, high = INT_BOUNDS[name]
            top = high if high is not None else MAX_PAGE
            if number < low:
                errors.setdefault(name, []).append(
                    f"The {_label(name)} field must be at least {low}."
                )
            elif number > top:
                errors.setdefault(name, []).append(
                    f"The {_label(name)} field must not be greater than {top}."
                )
            else:
                values[name] = number
        else:
            allowed = ENUMS[name]
            if value not in allowed:
                errors.setdefault(name, []).append(
                    f"The selected {_label(name)} is invalid (one of: {', '.join(allowed)})."
                )
            else:
                values[name] = value
    if "bpm_min" in values and "bpm_max" in values and values["bpm_min"] > values["bpm_max"]:
        errors.setdefault("bpm_max", []).append(
            "The bpm max field must be greater than or equal to bpm min."
        )
    if errors:
        raise ValidationFailed("Validation failed.", code="validation_failed", errors=errors)
    values.setdefault("per_page", default_per_page)
    return SearchParams(**values)
