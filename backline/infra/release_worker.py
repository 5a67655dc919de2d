"""``python -m backline.infra.release_worker``: the delivery worker as its own process.

Builds the container from ``BACKLINE_*`` settings, keeps the projections it needs up to
date when ``BACKLINE_PROJECTIONS_IN_PROCESS`` is on, and runs the delivery worker until
SIGTERM/SIGINT. Several may run at once (leases keep them off each other's jobs); a
killed one's jobs are resumed by the next after its lease expires.

``BACKLINE_DELIVERY_CRASH_AFTER_DELIVER=1`` is a fault-injection switch for tests: the
process exits abruptly right after a store accepted a delivery and before the job
recorded it (the worst moment for duplicates). It is refused in production mode.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import structlog

from backline.infra.container import Container
from backline.infra.logging import configure_logging
from backline.infra.settings import Settings

log = structlog.get_logger(__name__)


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    container = Container.build(settings)
    worker = container.delivery.worker
    if os.environ.get("BACKLINE_DELIVERY_CRASH_AFTER_DELIVER") == "1" and not settings.production:

        def crash(key: str) -> None:
            log.warning("fault_injection_crash_after_deliver", key=key)
            os._exit(137)

        worker.after_deliver = crash
    stop = threading.Event()

    def _stop(*_: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if settings.projections_in_process:
        container.runner.start()
    log.info("delivery_worker_started", worker=worker.worker_id)
    try:
        worker.run_forever(stop)
    finally:
        container.close()


if __name__ == "__main__":
    main()
