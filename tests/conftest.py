"""Shared fixtures: real SQLite files, real PostgreSQL databases, a real server process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from backline.infra.container import Container
from backline.infra.settings import Settings

PG_ADMIN_URL = os.environ.get("BACKLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ROOT = Path(__file__).resolve().parent.parent


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _require_pg() -> None:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip("PostgreSQL is not reachable")


def create_database() -> str:
    """A fresh, empty PostgreSQL database; returns its URL."""
    _require_pg()
    name = f"bl_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass


@pytest.fixture
def pg_url() -> Iterator[str]:
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every storage and projection test runs on both backends."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backline.db'}"
    else:
        url = create_database()
        yield url
        drop_database(url)


def make_settings(database_url: str, data_dir: Path, **overrides: str) -> Settings:
    env = {
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
        "BACKLINE_PROJECTIONS_IN_PROCESS": "0",
    }
    env.update(overrides)
    return Settings.from_env(env)


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = Container.build(make_settings(database_url, tmp_path))
    yield c
    c.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(self, base_url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
        self.base_url = base_url
        self.proc = proc
        self.log_path = log_path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(data_dir: Path, env_overrides: dict[str, str] | None = None) -> ServerProcess:
    """Run ``backline serve`` as a real process on a free port and wait for /health."""
    port = free_port()
    env = {**os.environ}
    env.update(
        {
            "BACKLINE_DATA_DIR": str(data_dir),
            "BACKLINE_FAST_PASSWORD_HASHING": "1",
            "BACKLINE_LOG_FORMAT": "json",
            "BACKLINE_PUBLIC_URL": f"http://127.0.0.1:{port}",
            # The 5,000-track demo catalog costs CPU on every start; tests that need it
            # ask for it (tests/e2e/test_agent_licensing.py).
            "BACKLINE_DEMO_CATALOG_TRACKS": "0",
        }
    )
    env.update(env_overrides or {})
    log_path = data_dir / "server.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backline.infra.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return ServerProcess(base, proc, log_path)
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not become healthy:\n{log_path.read_text(errors='replace')}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real ``backline serve`` on the embedded default (SQLite in a temp data dir)."""
    srv = start_server(tmp_path / "data")
    yield srv
    srv.stop()
