"""Helpers shared by the benchmarks: fresh databases, timing, printing."""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

PG_ADMIN_URL = os.environ.get("BACKLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def fresh_pg() -> Iterator[str]:
    name = f"bl_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_env(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_SECRET_KEY": "bench-secret-key-" + "x" * 32,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
        "BACKLINE_PROJECTIONS_IN_PROCESS": "0",
        "BACKLINE_LOG_LEVEL": "WARNING",
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def rate_line(label: str, count: int, seconds: float, unit: str = "ops/s") -> float:
    rate = count / seconds if seconds > 0 else 0.0
    print(f"  {label:<58} {count:>9,} in {seconds:7.3f}s = {rate:>12,.0f} {unit}")
    return rate


def ratio_line(label: str, ours: float, baseline: float, target: float | None = None) -> None:
    ratio = ours / baseline if baseline else 0.0
    verdict = ""
    if target is not None:
        verdict = f"  (target >= {target:.0%}: {'MET' if ratio >= target else 'NOT MET'})"
    print(f"  {label:<58} ratio = {ratio:6.1%}{verdict}")


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99
