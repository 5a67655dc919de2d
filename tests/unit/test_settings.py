"""Settings: typed, validated, and safe by default."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from backline.infra.settings import Settings, SettingsError


def test_embedded_default_generates_and_persists_a_secret(tmp_path: Path) -> None:
    env = {"BACKLINE_DATA_DIR": str(tmp_path)}
    with pytest.warns(UserWarning, match="BACKLINE_SECRET_KEY"):
        first = Settings.from_env(env)
    assert first.secret_key_generated
    assert first.database_url == f"sqlite:///{tmp_path}/backline.db"
    assert first.public_url == "http://127.0.0.1:8000"
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = Settings.from_env(env)
    assert second.secret_key == first.secret_key
    assert not second.secret_key_generated


def test_production_requires_a_secret(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="required in production"):
        Settings.from_env({"BACKLINE_DATA_DIR": str(tmp_path), "BACKLINE_PRODUCTION": "1"})


def test_production_defaults(tmp_path: Path) -> None:
    s = Settings.from_env(
        {
            "BACKLINE_DATA_DIR": str(tmp_path),
            "BACKLINE_PRODUCTION": "true",
            "BACKLINE_SECRET_KEY": "k" * 40,
            "BACKLINE_FAST_PASSWORD_HASHING": "1",
            "BACKLINE_PUBLIC_URL": "https://backline.example.com/",
            # Every secret production mode requires, set explicitly.
            "BACKLINE_LICENSE_SIGNING_KEY": "l" * 40,
        }
    )
    assert s.log_format == "json"
    assert s.fast_password_hashing is False
    assert s.cookie_secure
    assert s.public_url == "https://backline.example.com"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BACKLINE_DATABASE_URL", "mysql://x/y", "BACKLINE_DATABASE_URL"),
        ("BACKLINE_PORT", "eighty", "BACKLINE_PORT"),
        ("BACKLINE_SECRET_KEY", "short", "at least 32"),
        ("BACKLINE_PUBLIC_URL", "ftp://x", "BACKLINE_PUBLIC_URL"),
        ("BACKLINE_LOG_FORMAT", "xml", "BACKLINE_LOG_FORMAT"),
        ("BACKLINE_PRODUCTION", "maybe", "boolean"),
    ],
)
def test_invalid_values_are_refused(tmp_path: Path, name: str, value: str, message: str) -> None:
    env = {"BACKLINE_DATA_DIR": str(tmp_path), "BACKLINE_SECRET_KEY": "k" * 40, name: value}
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)
