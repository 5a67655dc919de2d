"""Content validation of uploads: audio by libsndfile (``soundfile``), images by Pillow.

Judged by content, never by name: the first bytes are sniffed, then the whole file is
decoded. Audio: WAV (incl. RF64), FLAC, AIFF/AIFC and MP3; the container's declared
length is compared with what actually decodes (a truncated or padded file is refused);
sample rate, bit depth, channels and duration are recorded with the store requirements.
Images: JPEG and PNG, fully decoded, EXIF orientation applied, converted to RGB
(transparency flattened onto white), centre-cropped to a square and re-encoded; anything
over the pixel budget is refused before decoding (decompression bombs).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from backline.adapters import workers
from backline.application.file_ports import Inspection
from backline.domain.errors import ValidationFailed
from backline.domain.uploads import UnsupportedMedia, audio_requirements, cover_requirements

log = structlog.get_logger(__name__)

AUDIO_FORMATS: dict[str, tuple[str, str]] = {
    "WAV": ("wav", "audio/wav"),
    "FLAC": ("flac", "audio/flac"),
    "AIFF": ("aiff", "audio/aiff"),
    "MP3": ("mp3", "audio/mpeg"),
}
IMAGE_FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
}
BIT_DEPTH = {
    "PCM_S8": 8,
    "PCM_U8": 8,
    "PCM_16": 16,
    "PCM_24": 24,
    "PCM_32": 32,
    "FLOAT": 32,
    "DOUBLE": 64,
}
# An MP3 decoder's frame count differs from the header's estimate by encoder delay and
# padding (at most a couple of frames); PCM formats must match exactly.
MP3_TOLERANCE_FRAMES = 1152 * 4
DECODE_BLOCK_FRAMES = 1 << 16


@dataclass(frozen=True)
class MediaLimits:
    max_audio_seconds: float = 4 * 3600.0
    max_image_pixels: int = 50_000_000  # e.g. 7071 x 7071
    min_image_side: int = 200


def _syncsafe(b: bytes) -> int:
    return (b[0] << 21) | (b[1] << 14) | (b[2] << 7) | b[3]


def _is_mp3_frame(b: bytes) -> bool:
    if len(b) < 4 or b[0] != 0xFF or (b[1] & 0xE0) != 0xE0:
        return False
    version = (b[1] >> 3) & 0x3
    layer = (b[1] >> 1) & 0x3
    bitrate = (b[2] >> 4) & 0xF
    rate = (b[2] >> 2) & 0x3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def sniff(head: bytes) -> str:
    """Name the format the first bytes prove (``WAV``, ``PNG``, ``ZIP archive`` …)."""
    if len(head) >= 12 and head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "WAV"
    if head[:4] == b"fLaC":
        return "FLAC"
    if len(head) >= 12 and head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "AIFF"
    if head[:3] == b"ID3" and len(head) >= 10:
        end = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
        rest = head[end : end + 4]
        if rest[:4] == b"fLaC":
            return "FLAC"
        if _is_mp3_frame(rest) or len(head) < end + 4:
            return "MP3"
        return "ID3 tag without MPEG audio"
    if _is_mp3_frame(head[:4]):
        return "MP3"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    known = [
        (b"PK\x03\x04", "ZIP archive"),
        (b"PK\x05\x06", "ZIP archive"),
        (b"\x1f\x8b", "gzip archive"),
        (b"BZh", "bzip2 archive"),
        (b"\xfd7zXZ", "xz archive"),
        (b"7z\xbc\xaf", "7-Zip archive"),
        (b"Rar!", "RAR archive"),
        (b"OggS", "Ogg"),
        (b"GIF8", "GIF image"),
        (b"%PDF", "PDF document"),
        (b"\x7fELF", "executable"),
        (b"MZ", "executable"),
        (b"BM", "BMP image"),
    ]
    for magic, name in known:
        if head.startswith(magic):
            return name
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "MP4/M4A container"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP image"
    if not head:
        return "empty"
    return "unknown"


def _riff_declared_data(path: Path, file_size: int) -> tuple[int, int] | None:
    """WAV: (declared data bytes, bytes actually present after the data header)."""
    with open(path, "rb") as fh:
        header = fh.read(12)
        if header[:4] != b"RIFF":
            return None  # RF64 sizes live in ds64; libsndfile checks those
        pos = 12
        while pos + 8 <= file_size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                return size, file_size - pos - 8
            pos += 8 + size + (size & 1)
    return None


def _aiff_declared(path: Path, file_size: int) -> tuple[int, int, int] | None:
    """AIFF: (COMM numSampleFrames, SSND sound bytes declared, bytes present)."""
    frames = None
    ssnd: tuple[int, int] | None = None
    with open(path, "rb") as fh:
        pos = 12
        while pos + 8 <= file_size:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                break
            cid, size = chunk[:4], struct.unpack(">I", chunk[4:])[0]
            if cid == b"COMM":
                comm = fh.read(6)
                if len(comm) == 6:
                    frames = struct.unpack(">I", comm[2:6])[0]
            elif cid == b"SSND":
                ssnd = (size - 8, file_size - pos - 16)
            pos += 8 + size + (size & 1)
    if frames is None or ssnd is None:
        return None
    return frames, ssnd[0], ssnd[1]


class SoundfilePillowInspector:
    """The default (and only) inspector: real decoders, no outside service."""

    name = "soundfile+pillow"

    def __init__(self, limits: MediaLimits | None = None) -> None:
        self.limits = limits or MediaLimits()

    def inspect(self, kind: str, path: Path, declared_type: str | None = None) -> Inspection:
        size = path.stat().st_size
        if size == 0:
            raise ValidationFailed("The file is empty.", code="empty_file")
        with open(path, "rb") as fh:
            head = fh.read(64 * 1024)
        fmt = sniff(head)
        if kind == "audio":
            if fmt not in AUDIO_FORMATS:
                raise UnsupportedMedia(
                    f"Audio must be WAV, FLAC, AIFF or MP3; the content is {_describe(fmt)}.",
                    detected=fmt,
                )
            return self._guarded(self._audio, path, size, fmt, declared_type, "corrupt_audio")
        if fmt not in IMAGE_FORMATS:
            raise UnsupportedMedia(
                f"Cover art must be a JPEG or PNG image; the content is {_describe(fmt)}.",
                detected=fmt,
            )
        return self._guarded(self._image, path, size, fmt, declared_type, "corrupt_image")

    @staticmethod
    def _guarded(
        check: Callable[[Path, int, str, str | None], Inspection],
        path: Path,
        size: int,
        fmt: str,
        declared_type: str | None,
        code: str,
    ) -> Inspection:
        """Decoders meet hostile input: any failure of theirs is a refusal, never a 500."""
        try:
            return check(path, size, fmt, declared_type)
        except ValidationFailed:
            raise
        except Exception as e:
            log.warning("media_decoder_failed", format=fmt, error=type(e).__name__)
            raise ValidationFailed(
                f"The {fmt} file could not be decoded ({type(e).__name__}).", code=code
            ) from None

    # -- audio -----------------------------------------------------------------------

    def _audio(self, path: Path, size: int, fmt: str, declared_type: str | None) -> Inspection:
        import soundfile  # imported on first use: numpy and libsndfile cost ~20 MB of RSS

        warnings: list[str] = []
        if fmt == "WAV":
            declared = _riff_declared_data(path, size)
            if declared is not None and declared[0] > declared[1]:
                raise ValidationFailed(
                    f"The WAV file is truncated: its data chunk declares {declared[0]} bytes "
                    f"but only {declared[1]} are present.",
                    code="truncated_audio",
                )
        if fmt == "AIFF":
            aiff = _aiff_declared(path, size)
            if aiff is not None and aiff[1] > aiff[2]:
                raise ValidationFailed(
                    f"The AIFF file is truncated: its sound chunk declares {aiff[1]} bytes "
                    f"but only {aiff[2]} are present.",
                    code="truncated_audio",
                )
        try:
            sf = soundfile.SoundFile(str(path))
        except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise ValidationFailed(
                f"The {fmt} file could not be decoded: {_short(e)}.", code="corrupt_audio"
            ) from None
        with sf:
            rate, channels = int(sf.samplerate), int(sf.channels)
            declared_frames = int(sf.frames)
            subtype = str(sf.subtype)
            container = str(sf.format)
            if rate <= 0 or channels <= 0:
                raise ValidationFailed(
                    "The audio header is invalid (no sample rate or channels).",
                    code="corrupt_audio",
                )
            cap = self.limits.max_audio_seconds
            if declared_frames / rate > cap:
                raise ValidationFailed(
                    f"The audio declares {declared_frames / rate / 3600:.1f} hours; the limit "
                    f"is {cap / 3600:.1f} hours.",
                    code="audio_too_long",
                )
            decoded = 0
            cap_frames = int(cap * rate) + DECODE_BLOCK_FRAMES
            buffer = bytearray(DECODE_BLOCK_FRAMES * channels * 2)  # reused: memory stays flat
            try:
                while True:
                    n = int(sf.buffer_read_into(buffer, dtype="int16"))
                    if n <= 0:
                        break
                    decoded += n
                    if decoded > cap_frames:
                        raise ValidationFailed(
                            "The audio decodes to more than the length limit.",
                            code="audio_too_long",
                        )
            except (soundfile.LibsndfileError, RuntimeError, AssertionError, ValueError) as e:
                raise ValidationFailed(
                    f"The {fmt} file is corrupt: decoding failed after {decoded} frames "
                    f"({_short(e)}).",
                    code="corrupt_audio",
                ) from None
        if decoded == 0:
            raise ValidationFailed("The file contains no audio frames.", code="empty_audio")
        tolerance = MP3_TOLERANCE_FRAMES if fmt == "MP3" else 0
        if declared_frames > 0 and abs(declared_frames - decoded) > tolerance:
            raise ValidationFailed(
                f"The {fmt} file is truncated or corrupt: it declares {declared_frames} frames "
                f"but {decoded} decode.",
                code="truncated_audio",
            )
        if fmt == "AIFF":
            aiff = _aiff_declared(path, size)
            if aiff is not None and aiff[0] != decoded:
                raise ValidationFailed(
                    f"The AIFF file declares {aiff[0]} frames but {decoded} decode.",
                    code="truncated_audio",
                )
        bit_depth = BIT_DEPTH.get(subtype)
        requirement = audio_requirements(fmt, rate, bit_depth, channels)
        warnings.extend(requirement.problems)
        ext, ctype = AUDIO_FORMATS[fmt]
        if declared_type and declared_type.split(";")[0].strip().lower() not in _aliases(ctype):
            warnings.append(
                f"declared type {declared_type!r} does not match the content ({ctype})."
            )
        media: dict[str, Any] = {
            "format": fmt,
            "container": container,
            "encoding": subtype,
            "sampleRate": rate,
            "bitDepth": bit_depth,
            "channels": channels,
            "frames": decoded,
            "declaredFrames": declared_frames,
            "durationSeconds": round(decoded / rate, 3),
            "requirements": [
                {"store": requirement.store, "ok": requirement.ok, "problems": requirement.problems}
            ],
        }
        return Inspection(
            kind="audio",
            format=fmt,
            extension=ext,
            content_type=ctype,
            media=media,
            warnings=tuple(warnings),
            distribution_ready=requirement.ok,
        )

    # -- images ----------------------------------------------------------------------

    def _image(self, path: Path, size: int, fmt: str, declared_type: str | None) -> Inspection:
        from PIL import Image, ImageOps

        limit = self.limits.max_image_pixels
        try:
            im = Image.open(path, formats=["JPEG", "PNG"])
        except Image.DecompressionBombError:
            raise ValidationFailed(
                "The image declares more pixels than allowed (decompression bomb refused).",
                code="image_too_large",
            ) from None
        except Exception as e:
            raise ValidationFailed(
                f"The {fmt} image could not be read: {_short(e)}.", code="corrupt_image"
            ) from None
        with im:
            width, height = im.size
            if width <= 0 or height <= 0:
                raise ValidationFailed("The image has no pixels.", code="corrupt_image")
            if width * height > limit:
                raise ValidationFailed(
                    f"The image is {width}x{height} ({width * height} pixels); at most {limit} "
                    "pixels are accepted (decompression bomb guard).",
                    code="image_too_large",
                )
            try:
                im.load()
            except Exception as e:
                raise ValidationFailed(
                    f"The {fmt} image is truncated or corrupt: {_short(e)}.", code="corrupt_image"
                ) from None
            orientation = im.getexif().get(0x0112, 1) if fmt == "JPEG" else 1
            out = ImageOps.exif_transpose(im)
            if out.mode in ("RGBA", "LA", "PA") or (out.mode == "P" and "transparency" in out.info):
                rgba = out.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (255, 255, 255))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                out = flat
            elif out.mode != "RGB":
                out = out.convert("RGB")
            w, h = out.size
            side = min(w, h)
            cropped = w != h
            if cropped:
                left, top = (w - side) // 2, (h - side) // 2
                out = out.crop((left, top, left + side, top + side))
            if side < self.limits.min_image_side:
                raise ValidationFailed(
                    f"The image is {side}x{side} after cropping; at least "
                    f"{self.limits.min_image_side}x{self.limits.min_image_side} is needed.",
                    code="image_too_small",
                )
            replacement = path.with_name(path.name + ".out")
            if fmt == "JPEG":
                out.save(replacement, "JPEG", quality=95, subsampling=0, optimize=False)
            else:
                out.save(replacement, "PNG", compress_level=1)
        requirement = cover_requirements(side, side)
        warnings = list(requirement.problems)
        if cropped:
            warnings.append(f"cropped from {w}x{h} to a centred {side}x{side} square.")
        ext, ctype = IMAGE_FORMATS[fmt]
        if declared_type and declared_type.split(";")[0].strip().lower() not in _aliases(ctype):
            warnings.append(
                f"declared type {declared_type!r} does not match the content ({ctype})."
            )
        media = {
            "format": fmt,
            "width": side,
            "height": side,
            "originalWidth": width,
            "originalHeight": height,
            "exifOrientation": int(orientation) if isinstance(orientation, int) else 1,
            "cropped": cropped,
            "colorMode": "RGB",
            "belowDistributionSize": not requirement.ok,
            "requirements": [
                {"store": requirement.store, "ok": requirement.ok, "problems": requirement.problems}
            ],
        }
        return Inspection(
            kind="coverArt",
            format=fmt,
            extension=ext,
            content_type=ctype,
            media=media,
            warnings=tuple(warnings),
            distribution_ready=requirement.ok,
            replacement=replacement,
        )


def _aliases(ctype: str) -> set[str]:
    extra = {
        "audio/wav": {"audio/x-wav", "audio/wave", "audio/vnd.wave"},
        "audio/flac": {"audio/x-flac"},
        "audio/aiff": {"audio/x-aiff"},
        "audio/mpeg": {"audio/mp3", "audio/mpeg3", "audio/x-mpeg"},
        "image/jpeg": {"image/jpg", "image/pjpeg"},
        "image/png": set(),
    }
    return {ctype, "application/octet-stream", *extra.get(ctype, set())}


def _describe(fmt: str) -> str:
    if fmt == "unknown":
        return "not a recognised format"
    if fmt == "empty":
        return "empty"
    return f"a {fmt}" if not fmt.startswith(("a ", "an ")) else fmt


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text[:200]


# -- isolation ---------------------------------------------------------------------------
#
# The decoders (libsndfile, libmpg123, libFLAC, libjpeg, libpng) parse hostile bytes, and
# numpy alone costs ~15 MB of resident memory. ``IsolatedInspector`` runs the inspection in
# a small pool of worker processes (spawned once per server process, recycled every
# ``MAX_TASKS_PER_WORKER`` files): a decoder crash costs one worker, not the server, and
# the API process stays lean however large the upload.


def _refusal_class(name: str) -> type[ValidationFailed]:
    return UnsupportedMedia if name == "UnsupportedMedia" else ValidationFailed


def _inspect_in_worker(
    limits: tuple[float, int, int], kind: str, path: str, declared_type: str | None
) -> tuple[str, Any]:
    try:
        inspector = SoundfilePillowInspector(MediaLimits(*limits))
        return "ok", inspector.inspect(kind, Path(path), declared_type)
    except ValidationFailed as e:
        return "refused", (type(e).__name__, e.message, e.code, e.details)


class IsolatedInspector:
    """:class:`SoundfilePillowInspector` in worker processes (the server's default)."""

    name = "soundfile+pillow (isolated)"

    def __init__(
        self, limits: MediaLimits | None = None, workers: int = 2, timeout: float = 900.0
    ) -> None:
        self.limits = limits or MediaLimits()
        self.workers = workers
        self.timeout = timeout

    def inspect(self, kind: str, path: Path, declared_type: str | None = None) -> Inspection:
        limits = (
            self.limits.max_audio_seconds,
            self.limits.max_image_pixels,
            self.limits.min_image_side,
        )
        try:
            status, payload = workers.call(
                _inspect_in_worker,
                limits,
                kind,
                str(path),
                declared_type,
                size=self.workers,
                timeout=self.timeout,
            )
        except workers.WorkerCrashed:
            log.warning("media_worker_crashed", kind=kind)
            raise ValidationFailed(
                "The file crashed the decoder; it is corrupt or malicious.",
                code="corrupt_audio" if kind == "audio" else "corrupt_image",
            ) from None
        except workers.WorkerTimeout:
            raise ValidationFailed(
                "Decoding the file took too long.", code="decode_timeout"
            ) from None
        if status == "ok":
            inspection: Inspection = payload
            return inspection
        cls_name, message, code, details = payload
        raise _refusal_class(cls_name)(message, code=code, **details)
