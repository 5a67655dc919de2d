"""The chain port: what licensing needs from an EVM chain holding USDC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class BlockRef:
    number: int
    timestamp: int


@dataclass(frozen=True)
class TokenTransfer:
    """One ERC-20 ``Transfer`` log."""

    token: str
    sender: str
    receiver: str
    value: int
    tx_hash: str
    log_index: int
    block_number: int
    block_timestamp: int


@dataclass(frozen=True)
class Authorization:
    """An EIP-3009 ``transferWithAuthorization`` message and its signature."""

    sender: str
    receiver: str
    value: int
    valid_after: int
    valid_before: int
    nonce: str  # 0x-prefixed 32 bytes
    signature: str  # 0x-prefixed 65 bytes


@dataclass(frozen=True)
class Settlement:
    success: bool
    tx_hash: str
    error: str = ""
    transfer: TokenTransfer | None = None


class ChainError(Exception):
    """The chain could not be reached or refused a call (maps to a retryable error)."""


class ChainPort(Protocol):
    """USDC on one EVM chain: read transfers, verify and settle EIP-3009 authorizations."""

    provider: str  # "base-rpc" or "local-evm"
    network: str  # "base"
    chain_id: int
    token_address: str
    token_name: str
    token_version: str
    receiving_address: str
    instance_id: str  # changes when the chain is a new one (dev chain restart)

    def head(self) -> BlockRef: ...

    def transfers(
        self, *, sender: str, receiver: str, from_block: int, to_block: int
    ) -> list[TokenTransfer]: ...

    def recover_authorizer(self, auth: Authorization) -> str | None:
        """The address whose key signed ``auth`` for this chain's token (EIP-712)."""
        ...

    def authorization_used(self, authorizer: str, nonce: str) -> bool: ...

    def balance_of(self, wallet: str) -> int: ...

    def settle(self, auth: Authorization) -> Settlement:
        """Submit ``transferWithAuthorization`` as the facilitator and wait for it."""
        ...
