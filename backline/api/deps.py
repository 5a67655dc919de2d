"""What the HTTP edge needs from the composition root (infra builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from backline.application.accounts import AccountService
from backline.application.sessions import SessionService
from backline.projections.framework import ProjectionRunner
from backline.projections.profiles import ProfileQueries


@dataclass(frozen=True)
class ApiConfig:
    public_url: str
    secret_key: str
    cookie_secure: bool = False
    production: bool = False
    max_request_bytes: int = 1_048_576
    aimd_origin: str = "https://app.aimusicdistributor.com"
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)


class Services(Protocol):
    accounts: AccountService
    profiles: ProfileQueries
    sessions: SessionService
    runner: ProjectionRunner

    def health(self, verbose: bool = False) -> dict[str, Any]: ...

    def start_background(self) -> None: ...

    def close(self) -> None: ...
