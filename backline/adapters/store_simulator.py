"""The offline delivery default: a local simulator of DSP ingestion (``local-store-simulator``).

Each store is a directory under ``<data dir>/store-simulator/<store>/``. A delivery is
honest work: the store re-checks the ERN message's required elements and reads every
resource back, comparing its SHA-256 and size with what the message declares, then
writes the message and a manifest into a batch directory published by an atomic
rename. The batch is keyed by the delivery key, so a second delivery with the same key
(a worker resuming after a crash, two workers racing) finds the batch and returns the
first receipt: nothing is delivered twice. Every accepted delivery is appended to
``deliveries.log`` (one line per batch) so tests and operators can count them.

Latency is configurable (``latency`` seconds in total, a few by default so a newcomer
sees a release go from ``delivering`` to ``live``): a quarter is spent transferring,
the rest is the store's ingestion before the release is live. ``failure_rate`` (per
store, 0..1) makes a delivery fail as a transient store error (HTTP 503), which the
worker retries with backoff.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from backline.application.delivery import (
    DeliveryReceipt,
    DeliveryRejected,
    DeliveryResource,
    StoreStatus,
)
from backline.application.ern import ErnInvalid, Party, check_required

log = structlog.get_logger(__name__)

CHUNK = 1024 * 1024


def store_dpid(store: str) -> str:
    """A stable, DPID-shaped party id for a simulated store (``PADPIDA`` + 11)."""
    digest = hashlib.sha256(store.encode()).hexdigest().upper()
    return "PADPIDA" + digest[:11]


class LocalStoreSimulator:
    provider = "local-store-simulator"

    def __init__(
        self,
        root: Path,
        *,
        latency: float = 3.0,
        failure_rate: float = 0.0,
        failure_rates: Mapping[str, float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.root = root
        self.latency = max(0.0, latency)
        self.failure_rate = failure_rate
        self.failure_rates = dict(failure_rates or {})
        self.rng = rng or random.Random()
        root.mkdir(parents=True, exist_ok=True)

    def party(self, store: str) -> Party:
        return Party(store_dpid(store), f"{store} (simulated)")

    def _batch_dir(self, store: str, key: str) -> Path:
        return self.root / store / hashlib.sha256(key.encode()).hexdigest()[:32]

    def _receipt(self, batch: Path) -> dict[str, str] | None:
        try:
            data: dict[str, str] = json.loads((batch / "receipt.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return data

    def deliver(
        self, key: str, store: str, message: bytes, resources: Sequence[DeliveryResource]
    ) -> DeliveryReceipt:
        batch = self._batch_dir(store, key)
        existing = self._receipt(batch)
        if existing is not None:
            return DeliveryReceipt(
                key, existing["receipt_id"], datetime.fromisoformat(existing["accepted_at"]), True
            )
        time.sleep(self.latency * 0.25)  # the transfer
        rate = self.failure_rates.get(store, self.failure_rate)
        if rate > 0 and self.rng.random() < rate:
            raise DeliveryRejected(
                f"{store}: 503 Service Unavailable (simulated transient failure)", retryable=True
            )
        try:
            check_required(message)
        except ErnInvalid as e:
            raise DeliveryRejected(f"{store}: ERN rejected: {e}", retryable=False) from None
        manifest = []
        for res in resources:
            digest = hashlib.sha256()
            size = 0
            try:
                with res.open() as fh:
                    while chunk := fh.read(CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
            except (OSError, LookupError) as e:
                raise DeliveryRejected(
                    f"{store}: resource {res.uri} unreadable: {e}", retryable=True
                ) from None
            if digest.hexdigest() != res.sha256 or size != res.size:
                raise DeliveryRejected(
                    f"{store}: resource {res.uri} does not match its declared hash/size",
                    retryable=False,
                )
            manifest.append({"uri": res.uri, "sha256": res.sha256, "size": size})
        now = datetime.now(UTC)
        receipt = {
            "key": key,
            "store": store,
            "receipt_id": hashlib.sha256(f"{store}:{key}".encode()).hexdigest()[:20],
            "accepted_at": now.isoformat(),
            "live_at": (now + timedelta(seconds=self.latency * 0.75)).isoformat(),
        }
        batch.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=batch.parent))
        try:
            (tmp / "message.xml").write_bytes(message)
            (tmp / "manifest.json").write_text(json.dumps(manifest))
            with (tmp / "receipt.json").open("w") as fh:
                json.dump(receipt, fh)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.rename(tmp, batch)  # atomic; fails if another delivery published first
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
                first = self._receipt(batch)
                if first is None:
                    raise DeliveryRejected(f"{store}: batch conflict", retryable=True) from None
                return DeliveryReceipt(
                    key, first["receipt_id"], datetime.fromisoformat(first["accepted_at"]), True
                )
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        with (self.root / "deliveries.log").open("a") as log_fh:
            log_fh.write(json.dumps({"key": key, "store": store, "at": now.isoformat()}) + "\n")
        log.info("store_sim_accepted", store=store, key=key)
        return DeliveryReceipt(key, receipt["receipt_id"], now, False)

    def status(self, key: str, store: str) -> StoreStatus:
        receipt = self._receipt(self._batch_dir(store, key))
        if receipt is None:
            return StoreStatus("rejected", f"{store}: no delivery with key {key}")
        if datetime.now(UTC) >= datetime.fromisoformat(receipt["live_at"]):
            return StoreStatus("live")
        return StoreStatus("processing")

    def deliveries(self) -> list[dict[str, str]]:
        """Every accepted delivery (for operators and tests)."""
        path = self.root / "deliveries.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
