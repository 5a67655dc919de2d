"""Property tests of the draft merge rules (delta, snapshot, trackPatches)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backline.domain.releases import Draft, merge_draft

keys = st.sampled_from(["title", "genre", "label", "upc", "release_date", "x"])
leaf = st.one_of(st.text(max_size=8), st.integers(-5, 5), st.booleans())
values: Any = st.recursive(
    leaf, lambda inner: st.dictionaries(keys, inner, max_size=3), max_leaves=6
)
objects = st.dictionaries(keys, values, max_size=5)
tracks = st.lists(objects, max_size=4)


@given(objects, tracks)
def test_an_empty_delta_changes_nothing(release: dict[str, Any], ts: list[dict[str, Any]]) -> None:
    draft = Draft(release=release, tracks=ts)
    assert merge_draft(draft, mode="delta") == draft


@given(objects, tracks, objects, tracks)
def test_applying_the_same_delta_twice_is_applying_it_once(
    r0: dict[str, Any], t0: list[dict[str, Any]], r1: dict[str, Any], t1: list[dict[str, Any]]
) -> None:
    draft = Draft(release=r0, tracks=t0)
    once = merge_draft(draft, release=r1, tracks=t1)
    assert merge_draft(once, release=r1, tracks=t1) == once
    # Every key the delta set is there with the delta's value (leaves) ...
    for k, v in r1.items():
        if not isinstance(v, dict):
            assert once.release[k] == v
    # ... and the base is never mutated.
    assert draft == Draft(release=r0, tracks=t0)
    assert len(once.tracks) == max(len(t0), len(t1))


@given(objects, tracks, objects, tracks)
def test_a_snapshot_replaces_everything(
    r0: dict[str, Any], t0: list[dict[str, Any]], r1: dict[str, Any], t1: list[dict[str, Any]]
) -> None:
    out = merge_draft(Draft(release=r0, tracks=t0), mode="snapshot", release=r1, tracks=t1)
    assert (out.release, out.tracks) == (r1, t1)


@given(tracks.filter(bool), st.data())
def test_a_track_patch_touches_only_its_track(
    ts: list[dict[str, Any]], data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, len(ts) - 1))
    patch = data.draw(objects)
    out = merge_draft(Draft(tracks=ts), track_patches=[{"index": i, "patch": patch}])
    assert out.tracks[:i] == ts[:i]
    assert out.tracks[i + 1 :] == ts[i + 1 :]
    for k, v in patch.items():
        if not isinstance(v, dict):
            assert out.tracks[i][k] == v
