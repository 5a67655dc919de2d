"""Properties of the catalog search parameter parser and the AI-search translator."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backline.application.ai_search import AiSearch, OfflineTranslator, sanitize
from backline.application.catalog_search import (
    ENUMS,
    INT_BOUNDS,
    KNOWN,
    STRING_LIMITS,
    SearchParams,
    parse_search_params,
)
from backline.domain.catalog_vocab import GENRE_WORDS, INSTRUMENTS, MOOD_SYNONYMS, USE_CASES
from backline.domain.errors import ValidationFailed

names = st.sampled_from([*sorted(KNOWN), "unknown", "sort", "q"])
values = st.one_of(
    st.text(max_size=260),
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(["Yes", "No", "yes", "social_media", "all_digital", "", " 7 ", "1e3"]),
    st.none(),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


def _check_bounds(p: SearchParams) -> None:
    assert 1 <= p.per_page <= 50
    assert p.page >= 1
    for name, (low, high) in INT_BOUNDS.items():
        value = getattr(p, name)
        if value is not None:
            assert value >= low
            assert high is None or value <= high
    for name, limit in STRING_LIMITS.items():
        value = getattr(p, name)
        if value is not None:
            assert 0 < len(value) <= limit
            assert value == value.strip()
    for name, allowed in ENUMS.items():
        value = getattr(p, name)
        assert value is None or value in allowed
    if p.bpm_min is not None and p.bpm_max is not None:
        assert p.bpm_min <= p.bpm_max


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.dictionaries(names, values, max_size=8))
def test_parser_either_accepts_within_bounds_or_names_the_bad_fields(raw: dict[str, Any]) -> None:
    try:
        params = parse_search_params(raw)
    except ValidationFailed as e:
        errors = e.details["errors"]
        assert errors
        assert set(errors) <= KNOWN
        assert all(
            isinstance(m, list) and m and all(isinstance(x, str) for x in m)
            for m in errors.values()
        )
        return
    _check_bounds(params)
    # Round trip: what the parser produced parses to the same thing.
    assert parse_search_params(params.as_query()) == params


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=10**6))
def test_valid_paging_is_kept(per_page: int, page: int) -> None:
    p = parse_search_params({"per_page": str(per_page), "page": str(page)})
    assert (p.per_page, p.page) == (per_page, page)


vocab = st.sampled_from(
    sorted(GENRE_WORDS)
    + sorted(MOOD_SYNONYMS)
    + list(INSTRUMENTS)
    + list(USE_CASES)
    + [
        "bpm",
        "120 bpm",
        "90-100 bpm",
        "under 80",
        "over 200 bpm",
        "in C minor",
        "F# major",
        "instrumental",
        "with vocals",
        "slow",
        "fast",
        "for",
        "a",
        "999 bpm",
        "0 bpm",
    ]
)
phrases = st.one_of(
    st.text(min_size=1, max_size=300),
    st.lists(vocab, min_size=1, max_size=12).map(" ".join),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(phrases, st.integers(min_value=1, max_value=50))
def test_offline_translator_always_produces_valid_params(phrase: str, per_page: int) -> None:
    if not phrase.strip():
        return
    params, provider = AiSearch(OfflineTranslator()).translate(phrase, per_page)
    assert provider == "local-vocabulary"
    parsed = parse_search_params(params)  # never raises
    _check_bounds(parsed)
    assert parsed.per_page == per_page
    assert set(params) <= KNOWN


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.dictionaries(st.text(max_size=12) | names, values, max_size=10),
    st.integers(min_value=1, max_value=50),
)
def test_sanitize_makes_any_llm_answer_valid(raw: dict[str, Any], per_page: int) -> None:
    params = sanitize(raw, per_page=per_page)
    _check_bounds(parse_search_params(params))


class _Broken:
    provider = "broken"

    def translate(self, phrase: str) -> dict[str, Any]:
        raise RuntimeError("model unavailable")


def test_a_failing_llm_falls_back_to_the_offline_translator() -> None:
    params, provider = AiSearch(_Broken()).translate("fast techno for a workout", 10)
    assert provider == "local-vocabulary"
    assert params["genre"] == "Electronica"
    assert params["subgenre"] == "Techno"
