"""AI search: a plain-English phrase → catalog search parameters.

The offline translator (default, ``provider: "local-vocabulary"``) reads genres, moods,
tempo words, BPM and key expressions, instrumentation and use cases from the catalog
vocabulary. An optional LLM translator (OpenAI-compatible, ``adapters/ai_search_llm.py``)
can replace it. Either way :func:`sanitize` keeps only parameters the search accepts,
so the result always passes :func:`parse_search_params`.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import structlog

from backline.application.catalog_search import (
    ENUMS,
    INT_BOUNDS,
    KNOWN,
    STRING_LIMITS,
    parse_search_params,
)
from backline.domain.catalog import normalize_key
from backline.domain.catalog_vocab import (
    GENRE_WORDS,
    INSTRUMENTS,
    MOOD_SYNONYMS,
    STYLE_WORDS,
    TEMPO_WORDS,
    USE_CASES,
)
from backline.domain.errors import ValidationFailed

log = structlog.get_logger(__name__)

MAX_PHRASE = 1000


class PhraseTranslator(Protocol):
    provider: str

    def translate(self, phrase: str) -> dict[str, Any]: ...


_BPM_RANGE = re.compile(r"\b(\d{2,3})\s*(?:-|\u2013|to)\s*(\d{2,3})\s*bpm\b")
_BPM_AROUND = re.compile(r"\b(?:around|about|approximately|~)?\s*(\d{2,3})\s*bpm\b")
_BPM_MIN = re.compile(r"\b(?:over|above|at least|faster than|more than)\s*(\d{2,3})\s*(?:bpm)?\b")
_BPM_MAX = re.compile(r"\b(?:under|below|at most|slower than|less than)\s*(\d{2,3})\s*(?:bpm)?\b")
_KEY = re.compile(
    r"\b(?:in\s+(?:the\s+key\s+of\s+)?)?([a-g])\s*(#|b|sharp|flat)?\s*(major|minor|maj|min)\b",
    re.IGNORECASE,
)
_INSTRUMENTAL = re.compile(r"\b(instrumental|no vocals|without vocals|no singing|vocal-free)\b")
_VOCAL = re.compile(r"\b(with vocals|vocals|singer|sung|lyrics|female vocal|male vocal)\b")


def _clamp_bpm(value: int) -> int:
    return max(1, min(300, value))


class OfflineTranslator:
    """Vocabulary-based translator: deterministic, offline, explainable."""

    provider = "local-vocabulary"

    def translate(self, phrase: str) -> dict[str, Any]:
        text = " " + phrase.lower() + " "
        params: dict[str, Any] = {}
        # BPM expressions first (numbers are unambiguous).
        if m := _BPM_RANGE.search(text):
            low, high = sorted((_clamp_bpm(int(m.group(1))), _clamp_bpm(int(m.group(2)))))
            params["bpm_min"], params["bpm_max"] = low, high
        elif m := _BPM_AROUND.search(text):
            center = _clamp_bpm(int(m.group(1)))
            params["bpm_min"], params["bpm_max"] = _clamp_bpm(center - 5), _clamp_bpm(center + 5)
        else:
            if m := _BPM_MIN.search(text):
                params["bpm_min"] = _clamp_bpm(int(m.group(1)))
            if m := _BPM_MAX.search(text):
                params["bpm_max"] = _clamp_bpm(int(m.group(1)))
            if (
                "bpm_min" in params
                and "bpm_max" in params
                and params["bpm_min"] > params["bpm_max"]
            ):
                params.pop("bpm_max")
        if "bpm_min" not in params and "bpm_max" not in params:
            for word in sorted(TEMPO_WORDS, key=len, reverse=True):
                if re.search(rf"\b{re.escape(word)}\b", text):
                    params["bpm_min"], params["bpm_max"] = TEMPO_WORDS[word]
                    break
        if m := _KEY.search(text):
            key = normalize_key(f"{m.group(1)}{m.group(2) or ''} {m.group(3)}")
            if key:
                params["key"] = key
        if _INSTRUMENTAL.search(text):
            params["instrumental"] = "Yes"
        elif _VOCAL.search(text):
            params["instrumental"] = "No"
        # Genre: a named genre wins over a subgenre word ("slow jazz piano" is Jazz, not
        # Classical/Piano); the longest subgenre phrase of that genre refines it.
        found = [
            (text.find(word), word)
            for word in GENRE_WORDS
            if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)
        ]
        if found:
            tops = sorted((pos, w) for pos, w in found if GENRE_WORDS[w][1] is None)
            subs = sorted((w for _, w in found if GENRE_WORDS[w][1]), key=len, reverse=True)
            genre = GENRE_WORDS[tops[0][1]][0] if tops else GENRE_WORDS[subs[0]][0]
            params["genre"] = genre
            for word in subs:
                if GENRE_WORDS[word][0] == genre:
                    params["subgenre"] = GENRE_WORDS[word][1]
                    break
        # Description: moods, style, instruments and use cases, in phrase order.
        words: list[str] = []
        for token in re.findall(r"[a-z][a-z0-9'-]*", text):
            if token in MOOD_SYNONYMS or token in STYLE_WORDS:
                words.append(token)
        for phrase_word in (*INSTRUMENTS, *USE_CASES):
            if re.search(rf"\b{re.escape(phrase_word)}\b", text):
                words.extend(phrase_word.split())
        seen: list[str] = []
        for w in words:
            if w not in seen:
                seen.append(w)
        if seen:
            params["description"] = " ".join(seen)[:200].strip()
        return params


def sanitize(raw: Any, *, per_page: int) -> dict[str, Any]:
    """Keep only accepted parameters with valid values; always parses."""
    params: dict[str, Any] = {}
    if isinstance(raw, dict):
        for name, value in raw.items():
            if name not in KNOWN or name in ("page", "per_page") or value is None:
                continue
            if name in STRING_LIMITS:
                if isinstance(value, str):
                    text = "".join(ch for ch in value if ord(ch) >= 32).strip()
                    text = text[: STRING_LIMITS[name]].strip()
                    if text:
                        params[name] = text
            elif name in INT_BOUNDS:
                if isinstance(value, int | float) and not isinstance(value, bool):
                    low, high = INT_BOUNDS[name]
                    params[name] = max(low, min(high or low, int(value)))
            elif name in ENUMS:
                if name == "instrumental" and isinstance(value, bool):
                    value = "Yes" if value else "No"
                if value in ENUMS[name]:
                    params[name] = value
    if "bpm_min" in params and "bpm_max" in params and params["bpm_min"] > params["bpm_max"]:
        params["bpm_min"], params["bpm_max"] = params["bpm_max"], params["bpm_min"]
    params["per_page"] = max(1, min(50, per_page))
    parse_search_params(params)  # guaranteed by construction; raises if not
    return params


class AiSearch:
    def __init__(self, primary: PhraseTranslator, fallback: PhraseTranslator | None = None) -> None:
        self.primary = primary
        self.fallback = fallback or OfflineTranslator()

    def translate(self, phrase: Any, per_page: Any = 10) -> tuple[dict[str, Any], str]:
        errors: dict[str, list[str]] = {}
        if not isinstance(phrase, str) or not phrase.strip():
            errors["phrase"] = ["The phrase field is required."]
        elif len(phrase) > MAX_PHRASE:
            errors["phrase"] = [
                f"The phrase field must not be greater than {MAX_PHRASE} characters."
            ]
        if per_page is None:
            per_page = 10
        if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= 50:
            errors["per_page"] = ["The per page field must be an integer between 1 and 50."]
        if errors:
            raise ValidationFailed("Validation failed.", code="validation_failed", errors=errors)
        assert isinstance(phrase, str)
        provider = self.primary.provider
        try:
            raw = self.primary.translate(phrase)
        except Exception as e:
            log.warning("ai_search_translator_failed", provider=provider, error=str(e))
            raw = self.fallback.translate(phrase)
            provider = self.fallback.provider
        return sanitize(raw, per_page=int(per_page)), provider
