"""Catalog import, projection and full-text search on SQLite (FTS5) and PostgreSQL
(tsvector + pg_trgm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from backline.application.catalog import read_jsonl
from backline.application.catalog_search import parse_search_params
from backline.application.demo_catalog import generate_demo_tracks
from backline.infra.container import Container

N = 400


def _load(container: Container, n: int = N) -> None:
    report = container.agent.catalog.import_records(
        enumerate(generate_demo_tracks(n), start=1), source="demo", demo=True
    )
    assert report.listed == n
    container.runner.catch_up()


def _search(container: Container, **raw: Any) -> Any:
    return container.agent.catalog_queries.search(parse_search_params(raw))


def test_import_is_idempotent_and_reports_bad_lines(container: Container, tmp_path: Path) -> None:
    _load(container, 50)
    again = container.agent.catalog.import_records(
        enumerate(generate_demo_tracks(60), start=1), source="demo", demo=True
    )
    assert (again.listed, again.unchanged) == (10, 50)
    path = tmp_path / "catalog.jsonl"
    good = next(generate_demo_tracks(1, prefix="ext-"))
    lines = [
        json.dumps(good),
        "{not json",
        json.dumps({**good, "external_id": "ext-2", "bpm": 0}),
        "",
        json.dumps(good),
    ]
    path.write_text("\n".join(lines) + "\n")
    report = container.agent.catalog.import_records(read_jsonl(path), source="file")
    assert report.listed == 1
    assert [e["line"] for e in report.errors] == [2, 3]
    assert report.errors[1]["field"] == "bpm"
    container.runner.catch_up()
    assert container.agent.catalog_queries.count() == 61
    strict = container.agent.catalog.import_records(read_jsonl(path), source="file", strict=True)
    assert strict.listed == 0


def test_filters_ranking_paging_and_fallback(container: Container) -> None:
    _load(container)
    everything = _search(container, per_page=50)
    assert everything.total == N
    assert not everything.fallback
    rock = _search(container, genre="ROCK", per_page=50)
    assert rock.total > 0
    assert all(r["genre"] == "Rock" for r in rock.rows)
    bpm = _search(container, bpm_min=90, bpm_max=110, instrumental="No", per_page=50)
    assert all(90 <= r["bpm"] <= 110 and not r["instrumental"] for r in bpm.rows)
    some = everything.rows[0]
    key = _search(container, key=some["key"].lower().replace(" maj", " major"), per_page=50)
    assert key.total > 0
    assert all(r["key"] == some["key"] for r in key.rows)
    tempo = _search(container, tempo=some["tempo"].split(" (")[0], per_page=50)
    assert all(r["tempo"] == some["tempo"] for r in tempo.rows)
    extra = next(r for r in everything.rows if r["additional_genres"])
    additional = _search(container, additional=extra["additional_genres"][0], per_page=50)
    assert all(extra["additional_genres"][0] in r["additional_genres"] for r in additional.rows)

    # description: each word matched across fields, rows matching more words rank first
    described = _search(container, description="piano documentary", per_page=50)
    assert described.total > 0

    def hits(r: dict[str, Any]) -> int:
        return sum(w in r["search_text"] for w in ("piano", "documentary"))

    assert hits(described.rows[0]) == 2
    assert all(hits(r) >= 1 for r in described.rows)
    keywords = _search(container, keywords="piano vlog", per_page=50)
    assert all("piano" in r["search_text"] and "vlog" in r["search_text"] for r in keywords.rows)

    pages = [_search(container, per_page=7, page=p).rows for p in (1, 2, 3)]
    ids = [r["id"] for page in pages for r in page]
    assert len(ids) == len(set(ids)) == 21
    assert _search(container, per_page=50, page=99).rows == []

    relaxed = _search(container, genre="Rock", mood="Nonexistent", key="C# Min", per_page=50)
    assert relaxed.fallback
    assert relaxed.relaxed[0] == "mood"
    assert all(r["genre"] == "Rock" for r in relaxed.rows)
    nothing = _search(container, description="zzzyzx")
    assert nothing.total == 0


def test_unlist_and_rebuild(container: Container) -> None:
    _load(container, 30)
    container.agent.catalog.unlist("demo-000003")
    container.runner.catch_up()
    assert container.agent.catalog_queries.get(3) is None
    before = _search(container, description="guitar", per_page=50)
    container.runner.rebuild("catalog")
    after = _search(container, description="guitar", per_page=50)
    assert [r["id"] for r in after.rows] == [r["id"] for r in before.rows]
    assert container.agent.catalog_queries.count() == 29
    track_id, _ = container.agent.catalog.list_track(
        next(generate_demo_tracks(3))  # demo-000001 again: already listed
        | {"external_id": "demo-000003"},
        source="artist",
    )
    container.runner.catch_up()
    assert track_id == 3
    assert container.agent.catalog_queries.get(3) is not None


@pytest.mark.parametrize("n", [5000])
def test_five_thousand_tracks_load_in_seconds(container: Container, n: int) -> None:
    import time

    started = time.perf_counter()
    _load(container, n)
    assert time.perf_counter() - started < 30
    assert _search(container).total == n


def test_catalog_cli_generate_and_import(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {
        **os.environ,
        "BACKLINE_DATA_DIR": str(tmp_path / "data"),
        "BACKLINE_SECRET_KEY": "cli-secret-" + "x" * 32,
        "BACKLINE_LOG_LEVEL": "WARNING",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backline.infra.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            timeout=120,
        )

    out = tmp_path / "demo.jsonl"
    made = cli("catalog", "generate", "--tracks", "120", "--output", str(out))
    assert made.returncode == 0, made.stderr
    assert len(out.read_text().splitlines()) == 120
    first = cli("catalog", "import", str(out))
    assert first.returncode == 0, first.stderr
    assert "listed 120, unchanged 0, invalid 0" in first.stdout
    again = cli("catalog", "import", str(out))
    assert "listed 0, unchanged 120, invalid 0" in again.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"external_id": "x"}\nnot json\n')
    strict = cli("catalog", "import", "--strict", str(bad))
    assert strict.returncode == 1
    assert "line 1" in strict.stderr
    assert "line 2" in strict.stderr
    loaded = cli("catalog", "generate", "--tracks", "130")  # loads directly; 120 exist
    assert "listed 10, unchanged 120" in loaded.stdout
