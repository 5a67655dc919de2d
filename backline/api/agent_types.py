"""What the agent licensing routes need from the composition root (``infra/agent_wiring``)."""

from __future__ import annotations

from typing import Any, Protocol
from uuid import UUID

from backline.application.ai_search import AiSearch
from backline.application.catalog import CatalogService
from backline.application.licensing import LicensingService
from backline.domain.licensing import License
from backline.projections.catalog import CatalogQueries


class AgentServices(Protocol):
    catalog: CatalogService
    catalog_queries: CatalogQueries
    licensing: LicensingService
    ai_search: AiSearch
    chain: Any  # the chain port; on the dev chain also the developer levers
    dev_chain_token: str
    demo_loading: bool
    settings: Any  # infra Settings: rate limits under settings.licensing

    @property
    def is_dev_chain(self) -> bool: ...

    def download(self, lic: License, fmt: str) -> tuple[bytes, str] | None: ...

    def dev_pay(self, payment_id: UUID, private_key: str | None) -> dict[str, Any]: ...
