"""Property tests: ISRC and UPC/EAN validation and assignment."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backline.domain.errors import ValidationFailed
from backline.domain.identifiers import (
    IdentifierSequence,
    check_isrc,
    check_upc,
    format_isrc,
    gtin_check_digit,
    is_valid_isrc,
    is_valid_upc,
    make_isrc,
    make_upc,
)

letters = st.text(string.ascii_uppercase, min_size=2, max_size=2)
alnum = st.text(string.ascii_uppercase + string.digits, min_size=3, max_size=3)
prefixes = st.builds(lambda c, r: c + r, letters, alnum)


def test_known_identifiers() -> None:
    assert check_isrc("USRC17607839") == "USRC17607839"
    assert check_isrc("us-rc1-76-07839") == "USRC17607839"
    assert format_isrc("USRC17607839") == "US-RC1-76-07839"
    assert check_upc("036000291452") == "036000291452"  # UPC-A
    assert check_upc("4006381333931") == "4006381333931"  # EAN-13
    with pytest.raises(ValidationFailed) as e:
        check_upc("036000291453", "release.upc")
    assert e.value.code == "invalid_upc"
    assert e.value.details["field"] == "release.upc"
    assert "expected 2" in e.value.message


@given(prefixes, st.integers(0, 99), st.integers(0, 99_999))
def test_assigned_isrc_is_valid_and_carries_its_parts(prefix: str, year: int, n: int) -> None:
    isrc = make_isrc(prefix, 2000 + year, n)
    assert is_valid_isrc(isrc)
    assert check_isrc(format_isrc(isrc).lower()) == isrc
    assert isrc[:5] == prefix
    assert int(isrc[5:7]) == year
    assert int(isrc[7:]) == n


@given(st.text(max_size=20))
def test_random_text_is_an_isrc_only_when_it_matches_the_format(text: str) -> None:
    cleaned = text.replace("-", "").replace(" ", "").upper()
    shape = (
        len(cleaned) == 12
        and cleaned[:2].isascii()
        and cleaned[:2].isalpha()
        and cleaned[2:5].isascii()
        and cleaned[2:5].isalnum()
        and cleaned[5:].isascii()
        and cleaned[5:].isdigit()
    )
    assert is_valid_isrc(text) == shape
    if not shape:
        with pytest.raises(ValidationFailed):
            check_isrc(text, "tracks[0].isrc")


@given(st.text(string.digits, min_size=11, max_size=12))
def test_check_digit_makes_a_valid_gtin(body: str) -> None:
    code = body + str(gtin_check_digit(body))
    assert is_valid_upc(code)


@given(
    st.text(string.digits, min_size=11, max_size=12),
    st.data(),
)
def test_every_single_digit_error_is_caught(body: str, data: st.DataObject) -> None:
    code = body + str(gtin_check_digit(body))
    pos = data.draw(st.integers(0, len(code) - 1))
    digit = data.draw(st.sampled_from([d for d in string.digits if d != code[pos]]))
    corrupted = code[:pos] + digit + code[pos + 1 :]
    assert not is_valid_upc(corrupted)


@given(st.text(string.digits, min_size=11, max_size=12), st.data())
def test_adjacent_transpositions_are_caught_unless_they_differ_by_5(
    body: str, data: st.DataObject
) -> None:
    code = body + str(gtin_check_digit(body))
    pos = data.draw(st.integers(0, len(code) - 2))
    a, b = code[pos], code[pos + 1]
    swapped = code[:pos] + b + a + code[pos + 2 :]
    if a == b or abs(int(a) - int(b)) == 5:
        return
    assert not is_valid_upc(swapped)


@given(st.sampled_from(["020000", "0123456", "12345678"]), st.integers(0, 9_999))
def test_assigned_upc_is_a_valid_upc_a_with_the_prefix(prefix: str, item: int) -> None:
    upc = make_upc(prefix, item % int(10 ** (11 - len(prefix))))
    assert len(upc) == 12
    assert upc.startswith(prefix)
    assert check_upc(upc) == upc


@settings(max_examples=50)
@given(st.integers(1, 32), st.lists(st.integers(0, 40), min_size=1, max_size=32))
def test_sharded_sequences_never_hand_out_a_number_twice(shards: int, takes: list[int]) -> None:
    seqs = [
        IdentifierSequence(kind="isrc", scope="ZZBLN26", shard=s, shards=shards, capacity=100_000)
        for s in range(shards)
    ]
    seen: set[int] = set()
    for i, count in enumerate(takes):
        seq = seqs[i % shards]
        for k in range(count):
            n = seq.peek(k)
            assert n is not None
            assert n % shards == seq.shard
            assert n not in seen
            seen.add(n)
        seq.take(count)
    for seq in seqs:
        assert seq.taken == sum(c for j, c in enumerate(takes) if j % shards == seq.shard)
