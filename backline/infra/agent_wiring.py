"""Wiring of agent licensing (issue 7): catalog, chain, licensing, AI search, demo data."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from backline.adapters.chain import LazyChain
from backline.application.ai_search import AiSearch, OfflineTranslator, PhraseTranslator
from backline.application.catalog import CatalogService
from backline.application.demo_catalog import generate_demo_tracks
from backline.application.licensing import LicensingConfig, LicensingService
from backline.application.store import EventStore
from backline.infra.settings import Settings
from backline.projections.catalog import CatalogQueries
from backline.projections.db import ReadStore
from backline.projections.licenses import LicenseQueries

log = structlog.get_logger(__name__)

DEV_CHAIN_TOKEN_FILE = "dev_chain_token"  # noqa: S105 - a file name


def build_chain(settings: Settings) -> Any:
    ls = settings.licensing
    if ls.chain == "base":
        from backline.adapters.chain.evm import connect_base

        return connect_base(
            ls.chain_rpc_url,
            receiving_address=ls.chain_receiving_address,
            facilitator_key=ls.chain_facilitator_key or None,
        )
    from backline.adapters.chain.evm import DevChain

    return DevChain(chain_id=ls.dev_chain_id)


@dataclass
class AgentLicensing:
    settings: Settings
    catalog: CatalogService
    catalog_queries: CatalogQueries
    licenses: LicenseQueries
    chain: Any
    licensing: LicensingService
    ai_search: AiSearch
    dev_chain_token: str = ""
    demo_loading: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def is_dev_chain(self) -> bool:
        return self.settings.licensing.chain == "dev"

    @classmethod
    def build(cls, settings: Settings, store: EventStore, read: ReadStore) -> AgentLicensing:
        ls = settings.licensing
        queries = CatalogQueries(read)
        chain = LazyChain(lambda: build_chain(settings))
        translator: PhraseTranslator = OfflineTranslator()
        if ls.ai_llm_url and ls.ai_llm_key:
            from backline.adapters.ai_search_llm import LlmTranslator

            translator = LlmTranslator(ls.ai_llm_url, ls.ai_llm_key, ls.ai_llm_model)
        config = LicensingConfig(
            public_url=settings.public_url,
            signing_key=ls.signing_key_bytes(),
            payment_window=timedelta(seconds=ls.payment_window_seconds),
            confirmations=ls.chain_confirmations,
        )
        return cls(
            settings=settings,
            catalog=CatalogService(store),
            catalog_queries=queries,
            licenses=LicenseQueries(read),
            chain=chain,
            licensing=LicensingService(store, chain, queries.get, config),
            ai_search=AiSearch(translator),
        )

    # -- background: demo catalog, dev chain, chain watcher ------------------------------

    def start_background(self, runner: Any) -> None:
        if self.is_dev_chain:
            self.dev_chain_token = self._write_dev_token()
        self._spawn("agent-init", lambda: self._init(runner))

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _init(self, runner: Any) -> None:
        n = self.settings.licensing.demo_catalog_tracks
        if n > 0 and self.catalog.is_empty():
            self.demo_loading = True
            started = time.perf_counter()
            try:
                report = self.catalog.import_records(
                    enumerate(generate_demo_tracks(n), start=1), source="demo", demo=True
                )
                runner.wait_for(report.position, ["catalog"], timeout=120)
                log.info(
                    "demo_catalog_loaded",
                    tracks=report.listed,
                    seconds=round(time.perf_counter() - started, 2),
                )
            except Exception:
                log.exception("demo_catalog_failed")
            finally:
                self.demo_loading = False
        try:
            self.chain.get()  # start the dev EVM (or connect to Base) now, not on first use
        except Exception:
            log.exception("chain_start_failed")
            return
        self._spawn("chain-watcher", self._watch)

    def _watch(self) -> None:
        """Check open payments for matching transfers and expiry every few seconds."""
        while not self._stop.wait(2.0):
            try:
                for payment_id in self.licenses.open_payment_ids(limit=200):
                    if self._stop.is_set():
                        return
                    self.licensing.check(payment_id)
            except Exception:
                log.exception("chain_watcher_failed")

    def _write_dev_token(self) -> str:
        import os

        path = Path(self.settings.data_dir) / DEV_CHAIN_TOKEN_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        return token

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            if thread.name == "chain-watcher":
                thread.join(timeout=5)

    # -- downloads and dev-chain levers ---------------------------------------------------

    def download(self, lic: Any, fmt: str) -> tuple[bytes, str] | None:
        """The licensed audio: demo tracks are rendered, others come from the file store."""
        from backline.application.demo_catalog import render_demo_audio

        media = {"mp3": "audio/mpeg", "wav": "audio/wav", "aif": "audio/aiff"}[fmt]
        if not lic.track.get("formats", {}).get(fmt):
            return None
        if lic.track.get("demo"):
            return render_demo_audio(int(lic.track["id"]), fmt), media
        path = Path(self.settings.data_dir) / "catalog_files" / f"{lic.track['external_id']}.{fmt}"
        if not path.is_file():
            return None
        return path.read_bytes(), media

    def dev_pay(self, payment_id: Any, private_key: str | None) -> dict[str, Any]:
        """Pay an open payment by a plain USDC transfer on the dev chain.

        Uses ``private_key`` (which must be the declared paying wallet's), or the key of
        the dev chain's own prefunded account when the declared wallet is one of those.
        Mints the missing test USDC first.
        """
        from eth_account import Account

        from backline.domain.errors import Conflict, ValidationFailed

        chain = self.chain.get()
        lic = self.licensing.get(payment_id)
        if not lic.is_open:
            raise Conflict(
                f"Payment is {lic.status}, not awaiting payment.", code="payment_not_open"
            )
        if lic.paying_wallet is None:
            raise ValidationFailed(
                "The payment has no paying_wallet to pay from.", code="no_paying_wallet"
            )
        key = private_key or chain.key_for(lic.paying_wallet)
        if key is None:
            raise ValidationFailed(
                "Give the paying wallet's private key (--private-key): it is not a dev account.",
                code="private_key_required",
            )
        if Account.from_key(key).address.lower() != lic.paying_wallet.lower():
            raise ValidationFailed(
                "That key is not the declared paying wallet's.", code="wrong_private_key"
            )
        balance = chain.balance_of(lic.paying_wallet)
        minted = 0
        if balance < lic.amount_units:
            minted = lic.amount_units - balance
            chain.fund(lic.paying_wallet, minted)
        transfer = chain.transfer_from_key(key, lic.receiving_address, lic.amount_units)
        return {
            "payment_id": str(lic.id),
            "tx_hash": transfer.tx_hash,
            "block_number": transfer.block_number,
            "amount_units": lic.amount_units,
            "minted_units": minted,
            "from": transfer.sender,
            "to": transfer.receiver,
        }
