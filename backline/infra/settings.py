"""Settings: ``BACKLINE_*`` environment variables read once into a typed object."""

from __future__ import annotations

import os
import secrets
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backline.infra.billing_settings import BillingSettings, BillingSettingsError
from backline.infra.licensing_settings import LicensingSettings, LicensingSettingsError
from backline.infra.release_settings import ReleaseSettings, ReleaseSettingsError
from backline.infra.upload_settings import UploadSettings, UploadSettingsError

LogFormat = Literal["console", "json"]


class SettingsError(ValueError):
    """A setting is missing or malformed."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"Not a boolean: {value!r}")


def _int(name: str, value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    public_url: str
    secret_key: str
    production: bool = False
    log_format: LogFormat = "console"
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    projections_in_process: bool = True
    projection_batch_size: int = 500
    aimd_origin: str = "https://app.aimusicdistributor.com"
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    max_request_bytes: int = 1_048_576
    fast_password_hashing: bool = False
    secret_key_generated: bool = False
    # Credits and payments (issue 5): Stripe or the offline sandbox
    billing: BillingSettings = field(default_factory=BillingSettings)
    # OAuth / MCP / API keys (issue 3)
    first_party_client_ids: tuple[str, ...] = field(default_factory=tuple)
    oauth_access_ttl: int = 3600
    oauth_refresh_grace_seconds: int = 10
    rate_limit_v1_read: str = "300 per 60 seconds"
    rate_limit_v1_write: str = "60 per 60 seconds"
    rate_limit_mcp: str = "300 per 60 seconds"
    rate_limit_auth: str = "30 per 60 seconds"
    rate_limit_first_party: str = "10 per 60 seconds"
    # Agent licensing (issue 7): chain, signing, demo catalog, AI search
    licensing: LicensingSettings = field(default_factory=LicensingSettings)
    # Uploads, AI detection, cover art (issue 4)
    uploads: UploadSettings = field(default_factory=UploadSettings)
    # Releases and delivery (issue 6)
    releases: ReleaseSettings = field(default_factory=ReleaseSettings)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def cookie_secure(self) -> bool:
        return self.public_url.startswith("https://")

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)

        def get(name: str, default: str = "") -> str:
            return e.get(f"BACKLINE_{name}", default)

        production = _bool(get("PRODUCTION"), False)
        data_dir = Path(get("DATA_DIR", "./var")).expanduser()
        database_url = get("DATABASE_URL") or f"sqlite:///{(data_dir / 'backline.db').as_posix()}"
        if not database_url.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise SettingsError("BACKLINE_DATABASE_URL must start with sqlite:/// or postgresql://")
        host = get("HOST", "127.0.0.1")
        port = _int("BACKLINE_PORT", get("PORT"), 8000)
        public_url = (get("PUBLIC_URL") or f"http://{host}:{port}").rstrip("/")
        if not public_url.startswith(("http://", "https://")):
            raise SettingsError("BACKLINE_PUBLIC_URL must be an http(s) URL")

        secret_key = get("SECRET_KEY")
        generated = False
        if not secret_key:
            if production:
                raise SettingsError("BACKLINE_SECRET_KEY is required in production mode")
            secret_key, generated = _persisted_secret(data_dir)
        if len(secret_key) < 32:
            raise SettingsError("BACKLINE_SECRET_KEY must be at least 32 characters")

        log_format = get("LOG_FORMAT", "json" if production else "console")
        if log_format not in ("console", "json"):
            raise SettingsError("BACKLINE_LOG_FORMAT must be console or json")
        origins = tuple(
            o.strip().rstrip("/") for o in get("ALLOWED_ORIGINS").split(",") if o.strip()
        )
        return Settings(
            data_dir=data_dir,
            database_url=database_url,
            public_url=public_url,
            secret_key=secret_key,
            production=production,
            log_format=log_format,  # type: ignore[arg-type]
            log_level=get("LOG_LEVEL", "INFO").upper(),
            host=host,
            port=port,
            projections_in_process=_bool(get("PROJECTIONS_IN_PROCESS"), True),
            projection_batch_size=_int(
                "BACKLINE_PROJECTION_BATCH_SIZE", get("PROJECTION_BATCH_SIZE"), 500
            ),
            aimd_origin=get("AIMD_ORIGIN", "https://app.aimusicdistributor.com").rstrip("/"),
            allowed_origins=origins,
            max_request_bytes=_int(
                "BACKLINE_MAX_REQUEST_BYTES", get("MAX_REQUEST_BYTES"), 1_048_576
            ),
            fast_password_hashing=_bool(get("FAST_PASSWORD_HASHING"), False) and not production,
            secret_key_generated=generated,
            billing=_billing(e, production),
            first_party_client_ids=tuple(
                c.strip() for c in get("FIRST_PARTY_CLIENT_IDS").split(",") if c.strip()
            ),
            oauth_access_ttl=_int("BACKLINE_OAUTH_ACCESS_TTL", get("OAUTH_ACCESS_TTL"), 3600),
            oauth_refresh_grace_seconds=_int(
                "BACKLINE_OAUTH_REFRESH_GRACE_SECONDS", get("OAUTH_REFRESH_GRACE_SECONDS"), 10
            ),
            rate_limit_v1_read=_limit("V1_READ", get("RATE_LIMIT_V1_READ"), "300 per 60 seconds"),
            rate_limit_v1_write=_limit("V1_WRITE", get("RATE_LIMIT_V1_WRITE"), "60 per 60 seconds"),
            rate_limit_mcp=_limit("MCP", get("RATE_LIMIT_MCP"), "300 per 60 seconds"),
            rate_limit_auth=_limit("AUTH", get("RATE_LIMIT_AUTH"), "30 per 60 seconds"),
            rate_limit_first_party=_limit(
                "FIRST_PARTY", get("RATE_LIMIT_FIRST_PARTY"), "10 per 60 seconds"
            ),
            licensing=_licensing(get, secret_key, database_url, production),
            uploads=_uploads(get),
            releases=_releases(get, production),
        )


def _releases(get: Any, production: bool) -> ReleaseSettings:
    try:
        return ReleaseSettings.from_env(get, production=production)
    except ReleaseSettingsError as e:
        raise SettingsError(str(e)) from None


def _uploads(get: Any) -> UploadSettings:
    try:
        return UploadSettings.from_env(get)
    except UploadSettingsError as e:
        raise SettingsError(str(e)) from None


def _licensing(get: Any, secret_key: str, database_url: str, production: bool) -> LicensingSettings:
    try:
        return LicensingSettings.from_env(
            get,
            secret_key=secret_key,
            is_sqlite=database_url.startswith("sqlite"),
            production=production,
        )
    except LicensingSettingsError as e:
        raise SettingsError(str(e)) from None


def _limit(name: str, value: str | None, default: str) -> str:
    """A rate limit in ``limits`` notation (``300 per 60 seconds``, ``60/minute``)."""
    if not value:
        return default
    from limits import parse

    try:
        parse(value)
    except ValueError:
        raise SettingsError(f"BACKLINE_RATE_LIMIT_{name} is not a rate limit: {value!r}") from None
    return value


def _billing(env: dict[str, str], production: bool) -> BillingSettings:
    try:
        return BillingSettings.from_env(env, production=production)
    except BillingSettingsError as e:
        raise SettingsError(str(e)) from None


def _persisted_secret(data_dir: Path) -> tuple[str, bool]:
    """Read or create ``<data_dir>/secret_key`` (0600). Embedded default only."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip(), False
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    warnings.warn(
        f"BACKLINE_SECRET_KEY is not set: generated one and saved it to {path}. "
        "Set BACKLINE_SECRET_KEY explicitly outside local development.",
        stacklevel=2,
    )
    return key, True
