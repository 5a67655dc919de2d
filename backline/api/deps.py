"""What the HTTP edge needs from the composition root (infra builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from backline.adapters.sandbox_payments import SandboxPayments
from backline.api.agent_types import AgentServices
from backline.application.accounts import AccountService
from backline.application.api_keys import ApiKeyService
from backline.application.billing import BillingService
from backline.application.credits import CreditService
from backline.application.oauth import OAuthService
from backline.application.releases import ReleaseService
from backline.application.sessions import SessionService
from backline.application.uploads import UploadService
from backline.projections.credentials import CredentialQueries
from backline.projections.credits import CreditQueries
from backline.projections.framework import ProjectionRunner
from backline.projections.profiles import ProfileQueries
from backline.projections.ratelimits import SqlRateLimitStorage
from backline.projections.releases import ReleaseQueries


@dataclass(frozen=True)
class ApiConfig:
    public_url: str
    secret_key: str
    cookie_secure: bool = False
    production: bool = False
    max_request_bytes: int = 1_048_576
    aimd_origin: str = "https://app.aimusicdistributor.com"
    allowed_origins: tuple[str, ...] = field(default_factory=tuple)
    # OAuth / MCP / API keys (issue 3)
    first_party_client_ids: tuple[str, ...] = field(default_factory=tuple)
    rate_limit_v1_read: str = "300 per 60 seconds"
    rate_limit_v1_write: str = "60 per 60 seconds"
    rate_limit_mcp: str = "300 per 60 seconds"
    rate_limit_auth: str = "30 per 60 seconds"
    rate_limit_first_party: str = "10 per 60 seconds"

    @property
    def mcp_url(self) -> str:
        """The protected resource (RFC 9728 ``resource``, RFC 8707 audience)."""
        return f"{self.public_url}/api/mcp"


class Services(Protocol):
    accounts: AccountService
    profiles: ProfileQueries
    sessions: SessionService
    runner: ProjectionRunner
    # credits and payments (issue 5)
    credits: CreditService
    billing: BillingService
    credit_queries: CreditQueries
    sandbox_payments: SandboxPayments | None
    oauth: OAuthService
    api_keys: ApiKeyService
    credentials: CredentialQueries
    rate_limits: SqlRateLimitStorage
    uploads: UploadService  # issue 4
    releases: ReleaseService  # issue 6
    release_queries: ReleaseQueries  # issue 6

    @property
    def agent(self) -> AgentServices: ...  # agent licensing (issue 7)

    def health(self, verbose: bool = False) -> dict[str, Any]: ...

    def start_background(self) -> None: ...

    def close(self) -> None: ...
