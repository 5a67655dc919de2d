"""Content validation with the real decoders: audio formats, images, bombs, bad files."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image

from backline.adapters.media import MediaLimits, SoundfilePillowInspector, sniff
from backline.domain.errors import ValidationFailed
from tests.uploads_helpers import audio_bytes, image_bytes, wav_bytes

INSPECTOR = SoundfilePillowInspector()


def put(tmp_path: Path, data: bytes, name: str = "f.bin") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def refused(
    tmp_path: Path, kind: str, data: bytes, limits: MediaLimits | None = None
) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as e:
        SoundfilePillowInspector(limits).inspect(kind, put(tmp_path, data))
    return e.value


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF", "MP3"])
def test_audio_formats_are_decoded_and_described(tmp_path: Path, fmt: str) -> None:
    ins = INSPECTOR.inspect("audio", put(tmp_path, audio_bytes(fmt, 1.0)))
    assert ins.format == fmt
    assert ins.media["sampleRate"] == 44100
    assert ins.media["channels"] == 2
    assert abs(ins.media["durationSeconds"] - 1.0) < 0.1
    if fmt == "MP3":
        assert ins.media["bitDepth"] is None
        assert not ins.distribution_ready
        assert any("lossy" in w for w in ins.warnings)
    else:
        assert ins.media["bitDepth"] == 16
        assert ins.distribution_ready
        assert ins.media["frames"] == 44100


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "AIFF"])
def test_truncated_audio_is_refused(tmp_path: Path, fmt: str) -> None:
    data = audio_bytes(fmt, 2.0)
    err = refused(tmp_path, "audio", data[: len(data) * 2 // 3])
    assert err.code in ("truncated_audio", "corrupt_audio")
    assert fmt in err.message


def test_store_requirements_reported(tmp_path: Path) -> None:
    ins = INSPECTOR.inspect(
        "audio", put(tmp_path, wav_bytes(0.5, rate=22050, channels=1, subtype="PCM_U8"))
    )
    assert not ins.distribution_ready
    req = ins.media["requirements"][0]
    assert req["store"] == "distribution"
    assert not req["ok"]
    text = " ".join(req["problems"])
    assert "22050" in text
    assert "8" in text
    assert "stereo" in text


def test_renamed_and_foreign_files(tmp_path: Path) -> None:
    # An image sent as audio, audio sent as cover art: refused by content, named.
    err = refused(tmp_path, "audio", image_bytes(64, 64))
    assert err.code == "unsupported_media"
    assert "PNG" in err.message
    err = refused(tmp_path, "coverArt", wav_bytes(0.2))
    assert err.code == "unsupported_media"
    assert "WAV" in err.message
    # A WAV that claims to be an MP3 is a WAV: the content decides the format.
    ins = INSPECTOR.inspect("audio", put(tmp_path, wav_bytes(0.2), "song.mp3"), "audio/mpeg")
    assert ins.format == "WAV"
    assert ins.extension == "wav"
    assert any("declared type" in w for w in ins.warnings)


def test_empty_and_garbage(tmp_path: Path) -> None:
    assert refused(tmp_path, "audio", b"").code == "empty_file"
    assert refused(tmp_path, "coverArt", b"").code == "empty_file"
    assert refused(tmp_path, "audio", b"\x00" * 1000).code == "unsupported_media"
    # A RIFF/WAVE header over garbage: nothing decodes.
    fake = b"RIFF" + struct.pack("<I", 1000) + b"WAVE" + b"\x13" * 1000
    assert refused(tmp_path, "audio", fake).code in (
        "corrupt_audio",
        "truncated_audio",
        "empty_audio",
    )


def test_zip_bomb_is_refused_as_an_archive(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("track.wav", b"\0" * 20_000_000)  # 20 MB of zeros in ~20 KB
    err = refused(tmp_path, "audio", buf.getvalue())
    assert err.code == "unsupported_media"
    assert "ZIP" in err.message


def test_audio_length_guard(tmp_path: Path) -> None:
    # A compressed file that decodes to more than the limit (the audio zip bomb).
    err = refused(tmp_path, "audio", audio_bytes("FLAC", 3.0), MediaLimits(max_audio_seconds=2.0))
    assert err.code == "audio_too_long"


def test_image_is_oriented_flattened_and_cropped(tmp_path: Path) -> None:
    # 400x300 with EXIF orientation 6 (rotate 90° clockwise to display): 300x400, crop 300.
    src = put(tmp_path, image_bytes(400, 300, "JPEG", exif_orientation=6))
    ins = INSPECTOR.inspect("coverArt", src)
    assert ins.format == "JPEG"
    assert ins.replacement is not None
    with Image.open(ins.replacement) as out:
        assert out.size == (300, 300)
        assert out.mode == "RGB"
        # Green was the top half; after rotating clockwise it is the right half.
        right = out.getpixel((290, 150))
        left = out.getpixel((10, 150))
        assert isinstance(right, tuple)
        assert isinstance(left, tuple)
        assert right[1] > 150 > left[1]
    assert ins.media["exifOrientation"] == 6
    assert ins.media["cropped"]
    assert ins.media["belowDistributionSize"] is True
    assert not ins.distribution_ready


def test_transparent_png_is_flattened_on_white(tmp_path: Path) -> None:
    im = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    ins = INSPECTOR.inspect("coverArt", put(tmp_path, buf.getvalue()))
    assert ins.replacement is not None
    with Image.open(ins.replacement) as out:
        assert out.getpixel((5, 5)) == (255, 255, 255)


def test_distribution_size_image(tmp_path: Path) -> None:
    ins = INSPECTOR.inspect("coverArt", put(tmp_path, image_bytes(3000, 3200, "PNG")))
    assert ins.distribution_ready
    assert ins.media["width"] == 3000


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_image_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 60000x60000 PNG header over a tiny IDAT: 3.6 gigapixels declared.
    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 1000))
        + _png_chunk(b"IEND", b"")
    )
    err = refused(tmp_path, "coverArt", png)
    assert err.code == "image_too_large"
    # Under Pillow's own bomb limit but over ours.
    err = refused(tmp_path, "coverArt", image_bytes(300, 300), MediaLimits(max_image_pixels=10_000))
    assert err.code == "image_too_large"


def test_truncated_and_corrupt_images(tmp_path: Path) -> None:
    jpeg = image_bytes(500, 500, "JPEG")
    assert refused(tmp_path, "coverArt", jpeg[: len(jpeg) // 2]).code == "corrupt_image"
    png = image_bytes(500, 500, "PNG")
    assert refused(tmp_path, "coverArt", png[: len(png) // 2]).code == "corrupt_image"
    gif = io.BytesIO()
    Image.new("RGB", (300, 300)).save(gif, "GIF")
    err = refused(tmp_path, "coverArt", gif.getvalue())
    assert err.code == "unsupported_media"
    assert "GIF" in err.message
    assert refused(tmp_path, "coverArt", image_bytes(50, 50)).code == "image_too_small"


def test_sniff_names_things() -> None:
    assert sniff(b"PK\x03\x04rest") == "ZIP archive"
    assert sniff(b"\x89PNG\r\n\x1a\n") == "PNG"
    assert sniff(b"") == "empty"
    assert sniff(b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x00") == "MP3"


def test_isolated_inspector_matches_in_process_and_survives_a_dead_worker(tmp_path: Path) -> None:
    import os
    import signal
    import time

    from backline.adapters import media, workers
    from backline.domain.uploads import UnsupportedMedia

    isolated = media.IsolatedInspector(workers=1)
    wav = put(tmp_path, audio_bytes("FLAC", 0.5), "a.flac")
    assert isolated.inspect("audio", wav).media == INSPECTOR.inspect("audio", wav).media
    cover = isolated.inspect("coverArt", put(tmp_path, image_bytes(400, 300, "JPEG"), "c.jpg"))
    assert cover.replacement is not None
    assert cover.replacement.exists()
    # Refusals cross the process boundary with their class, code and details.
    with pytest.raises(UnsupportedMedia) as e:
        isolated.inspect("audio", put(tmp_path, image_bytes(64, 64), "x.wav"))
    assert e.value.code == "unsupported_media"
    assert e.value.details["detected"] == "PNG"
    # A worker killed (as a decoder crash would) costs one request, not the server.
    for pid in workers.pids():
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    outcome: list[str] = []
    for _ in range(2):
        try:
            outcome.append(isolated.inspect("audio", wav).format)
        except ValidationFailed as err:
            outcome.append(err.code)
    assert outcome[-1] == "FLAC"
    assert set(outcome) <= {"FLAC", "corrupt_audio"}
