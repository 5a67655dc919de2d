"""Settings of agent licensing (issue 7): chain, license signing, demo catalog, AI search.

Read from ``BACKLINE_*`` variables by :meth:`LicensingSettings.from_env`, called once
from ``Settings.from_env``.

| variable | default | meaning |
|---|---|---|
| ``BACKLINE_CHAIN`` | ``dev`` | ``dev`` (in-process EVM with test USDC) or ``base`` |
| ``BACKLINE_CHAIN_RPC_URL`` | — | Base JSON-RPC URL (required for ``base``) |
| ``BACKLINE_CHAIN_RECEIVING_ADDRESS`` | — | where licenses are paid (required for ``base``) |
| ``BACKLINE_CHAIN_FACILITATOR_KEY`` | — | key that settles x402 authorizations on Base (secret) |
| ``BACKLINE_CHAIN_CONFIRMATIONS`` | 1 (dev), 3 (base) | confirmations before a transfer counts |
| ``BACKLINE_DEV_CHAIN_ID`` | 8453 | chain id of the dev EVM (mirrors Base, own USDC address) |
| ``BACKLINE_LICENSE_SIGNING_KEY`` | derived from the secret key | HMAC key (documents, links) |
| ``BACKLINE_LICENSE_PAYMENT_WINDOW`` | 900 | seconds a payment stays open |
| ``BACKLINE_DEMO_CATALOG_TRACKS`` | 5000 on SQLite, 0 otherwise | demo tracks loaded on first run |
| ``BACKLINE_AI_SEARCH_LLM_URL`` / ``_KEY`` / ``_MODEL`` | — | OpenAI-compatible endpoint |
| ``BACKLINE_RATE_LIMIT_AGENT_SEARCH`` / ``_AGENT_LICENSE`` | 60 / 10 per minute | per client IP |
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ChainKind = Literal["dev", "base"]


class LicensingSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class LicensingSettings:
    chain: ChainKind = "dev"
    chain_rpc_url: str = ""
    chain_receiving_address: str = ""
    chain_facilitator_key: str = ""
    chain_confirmations: int = 1
    dev_chain_id: int = 8453
    license_signing_key: str = ""
    payment_window_seconds: int = 900
    demo_catalog_tracks: int = 0
    ai_llm_url: str = ""
    ai_llm_key: str = ""
    ai_llm_model: str = "gpt-4o-mini"
    rate_limit_search: str = "60 per 60 seconds"
    rate_limit_license: str = "10 per 60 seconds"

    def signing_key_bytes(self) -> bytes:
        return self.license_signing_key.encode()

    @staticmethod
    def from_env(
        get: Callable[[str, str], str], *, secret_key: str, is_sqlite: bool, production: bool
    ) -> LicensingSettings:
        def integer(name: str, default: int) -> int:
            raw = get(name, "")
            if not raw:
                return default
            try:
                return int(raw)
            except ValueError:
                raise LicensingSettingsError(f"BACKLINE_{name} must be an integer") from None

        chain = get("CHAIN", "dev").strip().lower()
        if chain not in ("dev", "base"):
            raise LicensingSettingsError("BACKLINE_CHAIN must be dev or base")
        if chain == "base" and not (
            get("CHAIN_RPC_URL", "") and get("CHAIN_RECEIVING_ADDRESS", "")
        ):
            raise LicensingSettingsError(
                "BACKLINE_CHAIN=base needs BACKLINE_CHAIN_RPC_URL and "
                "BACKLINE_CHAIN_RECEIVING_ADDRESS"
            )
        signing = get("LICENSE_SIGNING_KEY", "")
        if not signing:
            if production:
                raise LicensingSettingsError(
                    "BACKLINE_LICENSE_SIGNING_KEY is required in production mode"
                )
            signing = hmac.new(
                secret_key.encode(), b"backline-license-signing", hashlib.sha256
            ).hexdigest()
        if len(signing) < 32:
            raise LicensingSettingsError("BACKLINE_LICENSE_SIGNING_KEY must be >= 32 characters")
        return LicensingSettings(
            chain=chain,  # type: ignore[arg-type]
            chain_rpc_url=get("CHAIN_RPC_URL", ""),
            chain_receiving_address=get("CHAIN_RECEIVING_ADDRESS", ""),
            chain_facilitator_key=get("CHAIN_FACILITATOR_KEY", ""),
            chain_confirmations=max(1, integer("CHAIN_CONFIRMATIONS", 1 if chain == "dev" else 3)),
            dev_chain_id=integer("DEV_CHAIN_ID", 8453),
            license_signing_key=signing,
            payment_window_seconds=max(30, integer("LICENSE_PAYMENT_WINDOW", 900)),
            demo_catalog_tracks=max(0, integer("DEMO_CATALOG_TRACKS", 5000 if is_sqlite else 0)),
            ai_llm_url=get("AI_SEARCH_LLM_URL", "").rstrip("/"),
            ai_llm_key=get("AI_SEARCH_LLM_KEY", ""),
            ai_llm_model=get("AI_SEARCH_LLM_MODEL", "gpt-4o-mini"),
            rate_limit_search=get("RATE_LIMIT_AGENT_SEARCH", "60 per 60 seconds"),
            rate_limit_license=get("RATE_LIMIT_AGENT_LICENSE", "10 per 60 seconds"),
        )
