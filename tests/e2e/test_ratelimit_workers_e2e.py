"""Rate limits hold across worker processes: ``backline serve --workers 2``, one window."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port

PASSWORD = "correct horse battery staple"


def test_v1_limit_is_shared_by_two_workers(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    data.mkdir()
    env = {
        **os.environ,
        "BACKLINE_DATA_DIR": str(data),
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
        "BACKLINE_LOG_FORMAT": "json",
        "BACKLINE_PUBLIC_URL": base,
        "BACKLINE_RATE_LIMIT_V1_READ": "12 per 120 seconds",
    }
    log = (tmp_path / "server.log").open("wb")
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
            "--workers",
            "2",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base) as c:
            c.get("/users/log-in")
            headers = {"x-csrftoken": c.cookies["csrftoken"]}
            r = c.post(
                "/users/register",
                json={"email": "w@example.com", "password": PASSWORD},
                headers=headers,
            )
            assert r.status_code == 201
            key = c.post("/api/keys", json={"name": "w"}, headers=headers).json()["key"]
        statuses = []
        remaining = []
        for _ in range(18):
            # A new connection each time: the kernel spreads them over both workers.
            r = httpx.get(
                f"{base}/api/v1/me",
                headers={"Authorization": f"Bearer {key}", "Connection": "close"},
            )
            statuses.append(r.status_code)
            remaining.append(int(r.headers["x-ratelimit-remaining"]))
        assert statuses.count(200) == 12
        assert statuses.count(429) == 6
        assert remaining[:12] == list(range(11, -1, -1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
