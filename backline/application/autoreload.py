"""The auto-reload process manager: follows ledger events, tops low balances up.

It reads the notification log (only the events that lower a balance) after its own
tracking position, asks :meth:`BillingService.maybe_reload` for each ledger whose
balance fell to at most the largest allowed threshold, and then moves its position.
``maybe_reload`` decides against the *current* ledger and billing profile, so a crash
between the two (the same events seen twice) or two managers running at once cannot
charge twice: the profile records the attempt before the card is charged and the store
lets only one writer record it.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog
from eventsourcing.utils import get_topic

from backline.application.billing import BillingService
from backline.application.store import EventStore
from backline.application.worker import PollingWorker
from backline.domain.credits import CreditLedger
from backline.domain.pricing import MAX_RELOAD_THRESHOLD

log = structlog.get_logger(__name__)


class PositionStore(Protocol):
    def get_position(self, name: str) -> int: ...

    def set_position(self, name: str, position: int) -> None: ...


class AutoReloadManager(PollingWorker):
    name = "autoreload"
    lowering = (CreditLedger.Debited, CreditLedger.Reversed)

    def __init__(
        self,
        store: EventStore,
        billing: BillingService,
        positions: PositionStore,
        *,
        batch_size: int = 200,
        poll_interval: float = 0.5,
    ) -> None:
        super().__init__(store, poll_interval=poll_interval)
        self.store = store
        self.billing = billing
        self.positions = positions
        self.batch_size = batch_size
        self.topics = [get_topic(c) for c in self.lowering]

    def process_batch(self) -> int:
        """Handle the next batch; return how many notifications were read."""
        start = self.positions.get_position(self.name)
        head = self.store.max_position()
        if start >= head:
            return 0
        notifications = self.store.recorder.select_notifications(
            start=start,
            limit=self.batch_size,
            stop=head,
            topics=self.topics,
            inclusive_of_start=False,
        )
        new_position = notifications[-1].id if len(notifications) == self.batch_size else head
        mapper = self.store.mapper
        for n in notifications:
            event: Any = mapper.to_domain_event(n)
            if event.balance_after > MAX_RELOAD_THRESHOLD:
                continue
            trigger = f"v{event.originator_version}"
            try:
                outcome = self.billing.maybe_reload(event.originator_id, trigger)
            except Exception:
                # One account's failure must not stall every other account's reloads.
                log.exception("autoreload_failed", ledger=str(event.originator_id))
                continue
            if outcome not in ("not_enabled", "not_needed"):
                log.info("autoreload", ledger=str(event.originator_id), outcome=outcome)
        self.positions.set_position(self.name, new_position)
        return max(len(notifications), 1)

    def catch_up(self) -> int:
        total = 0
        while True:
            done = self.process_batch()
            if not done:
                return total
            total += done

    def step(self) -> int:
        return self.process_batch()
