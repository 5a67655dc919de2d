"""The `backline` CLI as a user runs it: a real process, real storage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def run_cli(
    args: list[str], env_extra: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BACKLINE_FAST_PASSWORD_HASHING": "1", "BACKLINE_LOG_LEVEL": "WARNING"}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "backline.infra.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=120,
        check=False,
    )


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "BACKLINE_DATABASE_URL": database_url,
        "BACKLINE_DATA_DIR": str(tmp_path / "data"),
        "BACKLINE_SECRET_KEY": "cli-test-secret-" + "y" * 32,
    }


def test_accounts_projections_and_events(cli_env: dict[str, str]) -> None:
    r = run_cli(
        ["accounts", "create", "Admin@Example.com", "--admin"],
        cli_env,
        "correct horse battery staple\n",
    )
    assert r.returncode == 0, r.stderr
    assert "admin@example.com (admin)" in r.stdout

    r = run_cli(["accounts", "create", "admin@example.com"], cli_env, "another long passphrase\n")
    assert r.returncode != 0
    assert "email_taken" in r.stderr

    r = run_cli(["accounts", "create", "weak@example.com"], cli_env, "short\n")
    assert r.returncode != 0
    assert "weak_password" in r.stderr

    r = run_cli(["projections", "status"], cli_env)
    assert r.returncode == 0, r.stderr
    profiles = next(line for line in r.stdout.splitlines() if line.startswith("profiles"))
    assert profiles.split()[-1] == "0"  # no lag: `accounts create` caught up

    r = run_cli(["projections", "rebuild", "profiles"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "rebuilt profiles" in r.stdout

    r = run_cli(["projections", "rebuild", "nope"], cli_env)
    assert r.returncode != 0
    assert "unknown projection" in r.stderr

    r = run_cli(["events", "tail"], cli_env)
    assert r.returncode == 0, r.stderr
    assert "backline.Account.Registered" in r.stdout
    assert "backline.EmailIndex.Claimed" in r.stdout
    assert "$argon2" not in r.stdout  # password hashes are redacted
    assert '"password_hash":"[redacted]"' in r.stdout


def test_bad_settings_are_a_clear_error(tmp_path: Path) -> None:
    r = run_cli(
        ["projections", "status"],
        {"BACKLINE_DATABASE_URL": "mysql://x", "BACKLINE_DATA_DIR": str(tmp_path)},
    )
    assert r.returncode != 0
    assert "BACKLINE_DATABASE_URL" in r.stderr
    assert "Traceback" not in r.stderr
