"""Catalog search latency on PostgreSQL: Backline's query path vs the same SQL run directly.

``.venv/bin/python -m bench.bench_search [--sizes 5000,100000] [--rounds 20]``

For each catalog size a fresh database is filled through the real write path (demo
tracks imported as events, projected into ``catalog_tracks`` with its tsvector and
trigram indexes). A mix of filtered and description queries then runs through
``CatalogQueries.search`` + ``track_view`` (what ``GET /catalog/search`` does, minus
HTTP) and, as the baseline, the very same count and page SQL on a plain psycopg
connection in the same process. Target: p99 <= 25 ms at 100,000 tracks.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from backline.application.catalog_search import parse_search_params
from backline.application.demo_catalog import generate_demo_tracks
from backline.infra.container import Container
from backline.infra.settings import Settings
from backline.projections.catalog import track_view
from backline.projections.db import _pg_sql, postgres_conninfo
from bench.common import fresh_pg, percentiles, settings_env

TARGET_P99_MS = 25.0

QUERIES: list[dict[str, Any]] = [
    {"genre": "Rock"},
    {"genre": "Electronica", "subgenre": "Techno", "bpm_min": 120, "bpm_max": 140},
    {"bpm_min": 90, "bpm_max": 110, "instrumental": "Yes"},
    {"genre": "Cinematic", "key": "D Min"},
    {"mood": "Happy", "instrumental": "No", "license_type": "social_media"},
    {"tempo": "Medium Fast"},
    {"additional": "Pop", "genre": "Rock"},
    {"genre": "Jazz", "page": 3},
    {"description": "epic orchestral trailer"},
    {"description": "calm piano"},
    {"description": "upbeat indie rock commercial"},
    {"description": "dark synth tense", "bpm_min": 100},
    {"description": "acoustic guitar wedding", "instrumental": "Yes"},
    {"keywords": "piano vlog"},
    {"keywords": "strings", "genre": "Classical"},
    {"genre": "Hip-Hop", "description": "lo-fi chill", "per_page": 50},
    {"description": "energetic workout drums", "page": 5},
    {"genre": "World", "mood": "NoSuchMood"},  # fallback path
]


def _load(url: str, size: int, data_dir: Path) -> Container:
    container = Container.build(Settings.from_env(settings_env(url, data_dir)))
    started = time.perf_counter()
    report = container.agent.catalog.import_records(
        enumerate(generate_demo_tracks(size), start=1), source="demo", demo=True
    )
    imported = time.perf_counter()
    container.runner.catch_up("catalog", batch_size=5000)
    projected = time.perf_counter()
    _vacuum(url)
    print(
        f"  loaded {report.listed:,} tracks: events {imported - started:.1f}s, "
        f"projection {projected - imported:.1f}s"
    )
    return container


def _vacuum(url: str) -> None:
    # What autovacuum does shortly after a bulk load: statistics and the visibility map.
    with psycopg.connect(postgres_conninfo(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE catalog_tracks")
        conn.execute("VACUUM ANALYZE catalog_search")


def _ours(container: Container, raw: dict[str, Any]) -> None:
    params = parse_search_params(raw)
    result = container.agent.catalog_queries.search(params)
    [track_view(r, "http://bench", params.license_type) for r in result.rows]


class _Raw:
    """The same SQL statements on a bare psycopg connection: no pool, no row decoding."""

    dialect = "postgres"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def fetchone(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(_pg_sql(sql), tuple(params)).fetchone()

    def fetchall(self, sql: str, params: Any = ()) -> Any:
        return self.conn.execute(_pg_sql(sql), tuple(params)).fetchall()


def _direct(raw_ex: _Raw, container: Container, raw: dict[str, Any]) -> None:
    params = parse_search_params(raw)
    with raw_ex.conn.transaction():
        container.agent.catalog_queries.search_raw(raw_ex, params)


def run(
    size: int, rounds: int, verbose: bool = False, reuse_url: str = ""
) -> tuple[float, float, float, float]:
    print(f"\ncatalog search, {size:,} tracks (PostgreSQL)")
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        if reuse_url:  # an already loaded catalog (for quick iterations)
            url = reuse_url
            container = Container.build(Settings.from_env(settings_env(url, Path(tmp))))
            _vacuum(url)
        else:
            url = stack.enter_context(fresh_pg())
            container = _load(url, size, Path(tmp))
        conn = psycopg.connect(postgres_conninfo(url), autocommit=True)
        raw_ex = _Raw(conn)
        try:
            rng = random.Random(1)
            mix = [q for _ in range(rounds) for q in QUERIES]
            rng.shuffle(mix)
            for raw in QUERIES:  # warm caches for both paths
                _ours(container, raw)
                _direct(raw_ex, container, raw)
            ours: list[float] = []
            direct: list[float] = []
            by_shape: dict[int, list[float]] = {}
            for raw in mix:
                t = time.perf_counter()
                _ours(container, raw)
                ours.append((time.perf_counter() - t) * 1000)
                by_shape.setdefault(QUERIES.index(raw), []).append(ours[-1])
                t = time.perf_counter()
                _direct(raw_ex, container, raw)
                direct.append((time.perf_counter() - t) * 1000)
        finally:
            conn.close()
            container.close()
    o50, o99 = percentiles(ours)
    d50, d99 = percentiles(direct)
    print(
        f"  {'backline search (query + fallback + view)':<44} p50 {o50:6.2f} ms  p99 {o99:6.2f} ms"
    )
    print(f"  {'same SQL, direct psycopg':<44} p50 {d50:6.2f} ms  p99 {d99:6.2f} ms")
    print(f"  queries: {len(mix)} ({len(QUERIES)} shapes x {rounds} rounds)")
    if verbose:
        for index, samples in sorted(by_shape.items()):
            s50, s99 = percentiles(samples)
            print(f"    p50 {s50:6.2f} p99 {s99:6.2f} ms  {QUERIES[index]}")
    return o50, o99, d50, d99


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="5000,100000")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--verbose", action="store_true", help="p50/p99 per query shape")
    parser.add_argument("--reuse-url", default="", help="search this loaded database instead")
    args = parser.parse_args(argv)
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        results[size] = run(size, args.rounds, args.verbose, args.reuse_url)
    biggest = max(results)
    p99 = results[biggest][1]
    verdict = "MET" if p99 <= TARGET_P99_MS else "NOT MET"
    print(
        f"\n  p99 at {biggest:,} tracks: {p99:.2f} ms (target <= {TARGET_P99_MS:.0f} ms: {verdict})"
    )


if __name__ == "__main__":
    main()
