"""Catalog use cases: bulk import (idempotent by external id), opt-in, unlisting."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from backline.application.store import EventStore, retrying
from backline.domain.catalog import (
    CatalogSequence,
    CatalogTrack,
    TrackSpec,
    track_aggregate_id,
    validate_track,
)
from backline.domain.errors import DomainError, NotFound, ValidationFailed

log = structlog.get_logger(__name__)

IMPORT_CHUNK = 1000


@dataclass
class ImportReport:
    listed: int = 0
    unchanged: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "listed": self.listed,
            "unchanged": self.unchanged,
            "errors": len(self.errors),
            "position": self.position,
        }


def read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded object) for every non-blank line; bad JSON → ValidationFailed."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as e:
                yield (
                    number,
                    ValidationFailed(f"line {number}: invalid JSON ({e.msg})", code="invalid_json"),
                )


class CatalogService:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def import_records(
        self,
        records: Iterable[tuple[int, Any]],
        *,
        source: str,
        demo: bool = False,
        strict: bool = False,
    ) -> ImportReport:
        """Validate and list records in chunks; existing external ids are skipped.

        With ``strict`` the first invalid record aborts before anything is written.
        """
        report = ImportReport()
        specs: list[TrackSpec] = []
        seen: set[str] = set()
        for line, raw in records:
            try:
                if isinstance(raw, DomainError):
                    raise raw
                spec = validate_track(raw, demo=demo)
            except DomainError as e:
                report.errors.append(
                    {
                        "line": line,
                        "code": e.code,
                        "message": e.message,
                        **{k: v for k, v in e.details.items() if k == "field"},
                    }
                )
                continue
            if spec.external_id in seen:
                report.unchanged += 1
                continue
            seen.add(spec.external_id)
            specs.append(spec)
        if strict and report.errors:
            return report
        for start in range(0, len(specs), IMPORT_CHUNK):
            chunk = specs[start : start + IMPORT_CHUNK]
            listed, position = retrying(functools.partial(self._list_chunk, chunk, source))
            report.listed += listed
            report.unchanged += len(chunk) - listed
            report.position = max(report.position, position)
        log.info("catalog_imported", source=source, **report.as_dict())
        return report

    def _existing(self, specs: list[TrackSpec]) -> set[str]:
        ids = {track_aggregate_id(s.external_id): s.external_id for s in specs}
        recorder = self.store.recorder
        found: set[str] = set()
        for aggregate_id, external_id in ids.items():
            if recorder.select_events(aggregate_id, limit=1):
                found.add(external_id)
        return found

    def _list_chunk(self, specs: list[TrackSpec], source: str) -> tuple[int, int]:
        existing = self._existing(specs)
        fresh = [s for s in specs if s.external_id not in existing]
        if not fresh:
            return 0, 0
        sequence = self.store.find(CatalogSequence.create_id(), CatalogSequence)
        if sequence is None:
            sequence = CatalogSequence()
        first = sequence.allocate(len(fresh))
        tracks = [
            CatalogTrack(track_id=first + i, source=source, **spec.as_event_kwargs())
            for i, spec in enumerate(fresh)
        ]
        position = self.store.save_all(sequence, *tracks)
        return len(fresh), position

    def list_track(self, raw: dict[str, Any], *, source: str) -> tuple[int, int]:
        """An artist opts one released track in (prices, payees). Returns (track id, position).

        Listing the same external id again relists it if it had been unlisted.
        """
        spec = validate_track(raw)

        def attempt() -> tuple[int, int]:
            existing = self.store.find(track_aggregate_id(spec.external_id), CatalogTrack)
            if existing is not None:
                existing.relist()
                return existing.track_id, self.store.save_all(existing)
            sequence = self.store.find(CatalogSequence.create_id(), CatalogSequence)
            if sequence is None:
                sequence = CatalogSequence()
            track_id = sequence.allocate(1)
            track = CatalogTrack(track_id=track_id, source=source, **spec.as_event_kwargs())
            return track_id, self.store.save_all(sequence, track)

        return retrying(attempt)

    def unlist(self, external_id: str) -> int:
        def attempt() -> int:
            track = self.store.find(track_aggregate_id(external_id), CatalogTrack)
            if track is None:
                raise NotFound("Track not found.", code="track_not_found")
            track.unlist()
            return self.store.save_all(track)

        return retrying(attempt)

    def load(self, external_id: str) -> CatalogTrack | None:
        return self.store.find(track_aggregate_id(external_id), CatalogTrack)

    def is_empty(self) -> bool:
        return self.store.find(CatalogSequence.create_id(), CatalogSequence) is None
