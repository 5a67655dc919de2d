"""Hostile bytes never crash content validation: every outcome is a typed refusal or a pass."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backline.adapters.media import SoundfilePillowInspector
from backline.domain.errors import ValidationFailed
from tests.uploads_helpers import audio_bytes, image_bytes

INSPECTOR = SoundfilePillowInspector()
SAMPLES = {
    "audio": [audio_bytes(f, 0.2) for f in ("WAV", "FLAC", "AIFF", "MP3")],
    "coverArt": [image_bytes(240, 240, "PNG"), image_bytes(240, 240, "JPEG")],
}


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["audio", "coverArt"]))
    data = bytearray(draw(st.sampled_from(SAMPLES[kind])))
    how = draw(st.sampled_from(["flip", "cut", "splice"]))
    if how == "flip":
        for pos, value in draw(
            st.lists(
                st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                min_size=1,
                max_size=20,
            )
        ):
            data[pos] = value
    elif how == "cut":
        data = data[: draw(st.integers(1, len(data) - 1))]
    else:
        head = draw(st.integers(4, 200))
        data = data[:head] + draw(st.binary(max_size=4000))
    return kind, bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_media_is_accepted_or_refused_with_a_reason(case: tuple[str, bytes]) -> None:
    kind, data = case
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.bin"
        path.write_bytes(data)
        refusal: ValidationFailed | None = None
        try:
            ins = INSPECTOR.inspect(kind, path)
        except ValidationFailed as e:
            refusal = e
    if refusal is not None:
        assert refusal.code
        assert len(refusal.message) > 10
    else:
        assert ins.kind == kind
        assert ins.format
