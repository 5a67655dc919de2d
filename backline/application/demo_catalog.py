"""A realistic synthetic catalog, clearly marked as demo data (``demo: true``, ``demo-`` ids).

Deterministic for a given seed, so the embedded default and the tests see the same
catalog. Produces import records (the same shape ``backline catalog import`` reads).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from backline.domain.catalog import tempo_label
from backline.domain.catalog_vocab import GENRES, INSTRUMENTS, MOODS, STYLE_WORDS, USE_CASES

_FIRST = (
    "Nova",
    "Echo",
    "Luna",
    "Atlas",
    "Ivy",
    "Orion",
    "Sable",
    "Juniper",
    "Milo",
    "Wren",
    "Indigo",
    "Rowan",
    "Cleo",
    "Ezra",
    "Skye",
    "Marlow",
    "Vale",
    "Quinn",
    "Arlo",
    "Lyra",
)
_LAST = (
    "Harbor",
    "Reyes",
    "Okafor",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Castillo",
    "Byrne",
    "Novak",
    "Adeyemi",
    "Kowalski",
    "Fontaine",
    "Sato",
    "Vega",
    "Holloway",
    "Marsh",
)
_BANDS = (
    "The Paper Lanterns",
    "Velvet Static",
    "Neon Orchard",
    "Glass Harbor",
    "Low Tide Club",
    "Copper Fields",
    "Midnight Atlas",
    "Saltwater Choir",
    "Golden Hour Radio",
)
_TITLE_A = (
    "Chase",
    "Follow",
    "Light",
    "Run",
    "Carry",
    "Hold",
    "Find",
    "Burn",
    "Dream",
    "Wake",
    "Ride",
    "Break",
    "Lift",
    "Fade",
    "Call",
)
_TITLE_B = (
    "the Sunshine",
    "the Horizon",
    "Home",
    "the Night",
    "Me Higher",
    "the Tide",
    "Your Name",
    "the City Lights",
    "Forever",
    "the Storm",
    "Gold",
    "the Signal",
    "Together",
    "the Wild",
    "Paper Skies",
    "Velvet Roads",
    "Northern Lights",
)
_VERSIONS = ("Full", "60s", "30s", "Instrumental", "Alt Mix", "Full", "Full")
_KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_WALLET_CHARS = "0123456789abcdef"

DEMO_ARTWORK = "https://demo.backline.invalid/artwork/{n}.jpg"
DEMO_PREVIEW = "https://demo.backline.invalid/tracks/{n}"


def _wallet(rng: random.Random) -> str:
    return "0x" + "".join(rng.choice(_WALLET_CHARS) for _ in range(40))


def _artist(rng: random.Random, artist_id: int) -> dict[str, Any]:
    band = rng.random() < 0.3
    name = rng.choice(_BANDS) if band else f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
    return {"id": artist_id, "name": name}


def generate_demo_tracks(
    count: int, *, seed: int = 7, prefix: str = "demo-"
) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    genres = list(GENRES)
    for n in range(1, count + 1):
        genre = rng.choice(genres)
        subgenre = rng.choice(GENRES[genre])
        others = [g for g in genres if g != genre]
        additional = rng.sample(others, k=rng.choice((0, 1, 1, 2)))
        mood = rng.choice(MOODS)
        bpm = max(50, min(200, int(rng.gauss(118, 28))))
        instrumental = rng.random() < 0.55
        instruments = rng.sample(INSTRUMENTS, k=3)
        uses = rng.sample(USE_CASES, k=2)
        style = rng.sample(STYLE_WORDS, k=2)
        quality = "Maj" if rng.random() < 0.6 else "Min"
        title = f"{rng.choice(_TITLE_A)} {rng.choice(_TITLE_B)} {rng.choice(_VERSIONS)}"
        n_artists = 1 if rng.random() < 0.85 else 2
        artists = [_artist(rng, 1000 + rng.randrange(800)) for _ in range(n_artists)]
        vocals = (
            "instrumental"
            if instrumental
            else rng.choice(("female vocals", "male vocals", "vocal chops", "choir vocals"))
        )
        description = (
            f"{style[0].capitalize()}, {style[1]} {mood.lower()} {subgenre.lower()} track with "
            f"{instruments[0]}, {instruments[1]} and {instruments[2]}; {vocals}. "
            f"Great for {uses[0]} and {uses[1]}."
        )
        keywords = ", ".join([mood.lower(), subgenre.lower(), *instruments[:2], *uses])
        social = rng.choice((2_000_000, 3_000_000, 5_000_000, 5_000_000, 7_500_000, 10_000_000))
        digital = social * rng.choice((3, 4, 5))
        share = rng.choice((10_000, 7_000, 5_000))
        payees = [
            {
                "name": artists[0]["name"],
                "role": "artist",
                "wallet": _wallet(rng),
                "share_bps": share,
            }
        ]
        if share < 10_000:
            payees.append(
                {
                    "name": "Demo Publishing",
                    "role": "publisher",
                    "wallet": _wallet(rng),
                    "share_bps": 10_000 - share,
                }
            )
        yield {
            "external_id": f"{prefix}{n:06d}",
            "demo": True,
            "title": title,
            "duration": f"{rng.randrange(0, 5)}:{rng.randrange(10, 60):02d}",
            "artists": artists,
            "genre": genre,
            "subgenre": subgenre,
            "additional_genres": additional,
            "mood": mood,
            "tempo": tempo_label(bpm),
            "bpm": bpm,
            "key": f"{rng.choice(_KEYS)} {quality}",
            "instrumental": instrumental,
            "keywords": keywords if rng.random() < 0.8 else None,
            "description": description,
            "artwork_url": DEMO_ARTWORK.format(n=n),
            "preview_url": DEMO_PREVIEW.format(n=n),
            "formats_available": {"mp3": False, "wav": True, "aif": rng.random() < 0.5},
            "license_options": {
                "social_media": {"price_units": social},
                "all_digital": {"price_units": digital},
            },
            "payees": payees,
        }


def render_demo_audio(track_id: int, fmt: str, *, seconds: float = 2.0) -> bytes:
    """A short synthetic tone standing in for a demo track's audio (WAV or AIFF, 16-bit)."""
    import io
    import math
    import struct
    import wave

    rate = 22_050
    freq = 220.0 * (2 ** ((track_id % 24) / 12))
    frames = int(rate * seconds)
    samples = [int(12_000 * math.sin(2 * math.pi * freq * n / rate)) for n in range(frames)]
    if fmt == "wav":
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(struct.pack(f"<{frames}h", *samples))
        return buf.getvalue()
    if fmt == "aif":
        data = struct.pack(f">{frames}h", *samples)
        # 80-bit IEEE extended sample rate for the COMM chunk.
        exponent = 16383 + 14  # 22050 = 1.3458... * 2**14
        mantissa = int(rate * (2 ** (63 - 14)))
        rate_ext = struct.pack(">HQ", exponent, mantissa)
        comm = struct.pack(">hLh", 1, frames, 16) + rate_ext
        ssnd = struct.pack(">LL", 0, 0) + data
        body = (
            b"AIFF"
            + b"COMM"
            + struct.pack(">L", len(comm))
            + comm
            + b"SSND"
            + struct.pack(">L", len(ssnd))
            + ssnd
        )
        return b"FORM" + struct.pack(">L", len(body)) + body
    raise ValueError(f"no demo renderer for {fmt}")
