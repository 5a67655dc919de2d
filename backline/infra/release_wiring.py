"""Wiring of releases and delivery (issue 6): service, worker, store simulator, queries."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import structlog

from backline.adapters.store_simulator import LocalStoreSimulator
from backline.application.billing import BillingService
from backline.application.credits import CreditService
from backline.application.delivery import DeliveryPolicy, DeliveryWorker
from backline.application.ern import Party
from backline.application.release_files import UploadedReleaseFiles
from backline.application.releases import ReleasePolicy, ReleaseService
from backline.application.store import EventStore
from backline.application.uploads import UploadService
from backline.domain.credits import ledger_id
from backline.infra.release_settings import ReleaseSettings
from backline.projections.db import ReadStore
from backline.projections.releases import ReleaseQueries

log = structlog.get_logger(__name__)


@dataclass
class ReleaseWiring:
    service: ReleaseService
    queries: ReleaseQueries
    worker: DeliveryWorker
    simulator: LocalStoreSimulator

    def start(self, in_process: bool) -> None:
        if in_process:
            self.worker.start()

    def close(self) -> None:
        self.worker.stop()


def build_releases(
    settings: ReleaseSettings,
    *,
    data_dir: object,
    store: EventStore,
    read: ReadStore,
    credits: CreditService,
    billing: BillingService,
    uploads: UploadService,
) -> ReleaseWiring:
    from pathlib import Path

    files = UploadedReleaseFiles(uploads)

    def reload_enabled(account_id: UUID) -> bool:
        profile = billing.profile(account_id)
        return bool(profile is not None and profile.enabled and not profile.suspended)

    def reload(account_id: UUID, needed: int) -> str:
        return billing.maybe_reload(
            ledger_id(account_id), f"release-shortfall-{needed}", need=needed
        )

    service = ReleaseService(
        store,
        credits,
        files,
        ReleasePolicy(
            isrc_prefix=settings.isrc_prefix,
            upc_prefix=settings.upc_prefix,
            stores=settings.stores,
            max_attempts=settings.max_attempts,
            submit_rate_limit=settings.rate_limit_submit,
        ),
        reload=reload,
        reload_enabled=reload_enabled,
    )
    queries = ReleaseQueries(read)
    simulator = LocalStoreSimulator(
        Path(str(data_dir)) / "store-simulator",
        latency=settings.store_latency,
        failure_rate=settings.store_failure_rate,
        failure_rates=settings.store_failure_rates,
    )
    worker = DeliveryWorker(
        store,
        queries,
        simulator,
        files,
        credits,
        DeliveryPolicy(
            sender=Party(settings.sender_dpid, settings.sender_name),
            lease_seconds=settings.lease_seconds,
            backoff_base=settings.backoff_base,
            check_interval=max(0.1, min(1.0, settings.store_latency / 6)),
            poll_interval=0.25,
            xsd_dir=settings.xsd_dir,
        ),
    )
    return ReleaseWiring(service, queries, worker, simulator)
