"""Helpers for release tests: a container with a fast store simulator, uploads, bodies."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

from backline.infra.container import Container
from tests.conftest import make_settings
from tests.uploads_helpers import image_bytes, wav_bytes, with_riff_info

PASSWORD = "correct horse battery staple"

FAST = {
    "BACKLINE_STORE_LATENCY": "0.2",
    "BACKLINE_DELIVERY_BACKOFF": "0.05",
    "BACKLINE_DELIVERY_LEASE": "5",
}


def build(database_url: str, data_dir: Path, **overrides: str) -> Container:
    return Container.build(make_settings(database_url, data_dir, **{**FAST, **overrides}))


def release_date(days: int = 10) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


class Artist:
    """An account with uploaded cover art and audio (one human, one AI-made track)."""

    def __init__(
        self, c: Container, email: str, credits: int = 10, account_id: UUID | None = None
    ) -> None:
        self.c = c
        self.id: UUID = account_id or c.accounts.register(email, PASSWORD, "Ada").account_id
        if credits:
            c.credits.grant(self.id, credits, f"grant:test:{email}")
        self.cover = self.upload("coverArt", image_bytes(3000, 3000), "cover.png", "image/png")
        self.human = self.upload("audio", wav_bytes(seconds=1.0, seed=1), "human.wav", "audio/wav")
        self.ai = self.upload(
            "audio",
            with_riff_info(wav_bytes(seconds=1.0, seed=2), {"ISFT": "Suno v4"}),
            "suno.wav",
            "audio/wav",
        )

    def upload(self, kind: str, data: bytes, name: str, ctype: str) -> str:
        published = self.c.uploads.upload_inline(
            self.id, kind, base64.b64encode(data).decode(), name, ctype
        )
        return published.file_url

    def release(self, **over: Any) -> dict[str, Any]:
        r = {
            "title": "Night Drive",
            "primary_artist_name": "Ada",
            "genre": "Electronic",
            "release_date": release_date(),
            "cover_art_file_url": self.cover,
        }
        r.update(over)
        return r

    def track(self, url: str, title: str = "Song", **over: Any) -> dict[str, Any]:
        t = {
            "title": title,
            "audio_file_url": url,
            "explicit_flag": False,
            "writers": [{"name": "Ada Lovelace"}],
        }
        t.update(over)
        return t

    def balance(self) -> int:
        return self.c.credits.balance(self.id)


def drive_delivery(c: Container, job_id: UUID, until: tuple[str, ...], timeout: float = 20) -> Any:
    """Run projections and the worker in this thread until the job reaches ``until``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.runner.catch_up()
        c.delivery.worker.run_once()
        c.runner.catch_up()
        row = c.release_queries.job_by_id(job_id)
        if row is not None and row["status"] in until:
            return row
        time.sleep(0.05)
    raise AssertionError(
        f"job {job_id} did not reach {until}: {c.release_queries.job_by_id(job_id)}"
    )
