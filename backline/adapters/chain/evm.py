"""Chain adapters over web3: Base mainnet over JSON-RPC, and an in-process dev EVM.

:class:`Web3Chain` implements the :class:`~backline.application.chain.ChainPort` for any
web3 connection. :func:`connect_base` asserts chain id 8453 and the USDC contract at
start-up. :class:`DevChain` runs eth-tester + py-evm in this process, deploys the test
USDC compiled from ``contracts/TestUSDC.vy`` (artifact ``contracts/TestUSDC.json``) and
adds the developer's levers: mint, mine, snapshot/revert, raw transactions.
"""

from __future__ import annotations

import json
import threading
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import structlog
from eth_account import Account
from eth_account.messages import encode_typed_data
from web3 import Web3

from backline.application.chain import (
    Authorization,
    BlockRef,
    ChainError,
    Settlement,
    TokenTransfer,
)

log = structlog.get_logger(__name__)

CONTRACTS = Path(__file__).parent / "contracts"
BASE_CHAIN_ID = 8453
BASE_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
TRANSFER_TOPIC = "0x" + Web3.keccak(text="Transfer(address,address,uint256)").hex().removeprefix(
    "0x"
)

ERC20_ABI: list[dict[str, Any]] = [
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "name": "name",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "name": "version",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "string"}],
    },
    {
        "name": "authorizationState",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "a", "type": "address"}, {"name": "n", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
    {
        "name": "transferWithAuthorization",
        "type": "function",
        "stateMutability": "nonpayable",
        "inputs": [
            {"name": "from", "type": "address"},
            {"name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
            {"name": "validAfter", "type": "uint256"},
            {"name": "validBefore", "type": "uint256"},
            {"name": "nonce", "type": "bytes32"},
            {"name": "signature", "type": "bytes"},
        ],
        "outputs": [],
    },
    {
        "name": "transfer",
        "type": "function",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
]

EIP3009_TYPES = {
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ]
}


@lru_cache(maxsize=1)
def test_usdc_artifact() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CONTRACTS / "TestUSDC.json").read_text())
    return data


def _hex(value: Any) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _topic_address(address: str) -> str:
    return "0x" + "0" * 24 + address.lower().removeprefix("0x")


def eip3009_typed_data(
    auth: Authorization, *, chain_id: int, token: str, name: str, version: str
) -> dict[str, Any]:
    return {
        "domain": {
            "name": name,
            "version": version,
            "chainId": chain_id,
            "verifyingContract": Web3.to_checksum_address(token),
        },
        "types": EIP3009_TYPES,
        "message": {
            "from": Web3.to_checksum_address(auth.sender),
            "to": Web3.to_checksum_address(auth.receiver),
            "value": auth.value,
            "validAfter": auth.valid_after,
            "validBefore": auth.valid_before,
            "nonce": bytes.fromhex(auth.nonce.removeprefix("0x")),
        },
    }


class Web3Chain:
    """The chain port over a web3 connection (thread-safe: one lock per chain)."""

    network = "base"

    def __init__(
        self,
        w3: Web3,
        *,
        provider: str,
        chain_id: int,
        token_address: str,
        receiving_address: str,
        facilitator_key: str | None,
        instance_id: str,
        token_name: str = "USD Coin",  # noqa: S107 - EIP-712 domain name
        token_version: str = "2",  # noqa: S107 - EIP-712 domain version
        gas_price_wei: int | None = None,
    ) -> None:
        self.w3 = w3
        self.provider = provider
        self.chain_id = chain_id
        self.token_address = Web3.to_checksum_address(token_address)
        self.receiving_address = Web3.to_checksum_address(receiving_address)
        self.token_name = token_name
        self.token_version = token_version
        self.instance_id = instance_id
        self._facilitator = Account.from_key(facilitator_key) if facilitator_key else None
        self._gas_price = gas_price_wei
        self._lock = threading.RLock()
        self.token = w3.eth.contract(address=self.token_address, abi=ERC20_ABI)
        self._timestamps: dict[int, int] = {}

    @property
    def facilitator_address(self) -> str | None:
        return self._facilitator.address if self._facilitator else None

    # -- reads -----------------------------------------------------------------------

    def head(self) -> BlockRef:
        with self._lock:
            try:
                block = self.w3.eth.get_block("latest")
            except Exception as e:  # pragma: no cover - network failure
                raise ChainError(f"cannot read the chain head: {e}") from e
            return BlockRef(number=int(block["number"]), timestamp=int(block["timestamp"]))

    def _timestamp(self, number: int) -> int:
        ts = self._timestamps.get(number)
        if ts is None:
            ts = int(self.w3.eth.get_block(number)["timestamp"])
            self._timestamps[number] = ts
        return ts

    def transfers(
        self, *, sender: str, receiver: str, from_block: int, to_block: int
    ) -> list[TokenTransfer]:
        if to_block < from_block:
            return []
        with self._lock:
            try:
                logs = self.w3.eth.get_logs(
                    {
                        "address": self.token_address,
                        "fromBlock": from_block,
                        "toBlock": to_block,
                        "topics": [
                            TRANSFER_TOPIC,
                            _topic_address(sender),
                            _topic_address(receiver),
                        ],
                    }
                )
            except Exception as e:
                raise ChainError(f"cannot read transfer logs: {e}") from e
            # A reorg can drop cached blocks: timestamps are cached per call only.
            self._timestamps.clear()
            out = [self._decode(entry) for entry in logs]
        return [t for t in out if t is not None]

    def _decode(self, entry: Any) -> TokenTransfer | None:
        topics = entry["topics"]
        if len(topics) != 3 or _hex(topics[0]).lower() != TRANSFER_TOPIC.lower():
            return None
        data = entry["data"]
        raw = bytes.fromhex(_hex(data)[2:]) if not isinstance(data, bytes) else data
        number = int(entry["blockNumber"])
        return TokenTransfer(
            token=Web3.to_checksum_address(entry["address"]),
            sender=Web3.to_checksum_address("0x" + _hex(topics[1])[-40:]),
            receiver=Web3.to_checksum_address("0x" + _hex(topics[2])[-40:]),
            value=int.from_bytes(raw[:32], "big"),
            tx_hash=_hex(entry["transactionHash"]).lower(),
            log_index=int(entry["logIndex"]),
            block_number=number,
            block_timestamp=self._timestamp(number),
        )

    def balance_of(self, wallet: str) -> int:
        with self._lock:
            return int(self.token.functions.balanceOf(Web3.to_checksum_address(wallet)).call())

    def recover_authorizer(self, auth: Authorization) -> str | None:
        try:
            typed = eip3009_typed_data(
                auth,
                chain_id=self.chain_id,
                token=self.token_address,
                name=self.token_name,
                version=self.token_version,
            )
            message = encode_typed_data(
                full_message={
                    "types": {
                        "EIP712Domain": [
                            {"name": "name", "type": "string"},
                            {"name": "version", "type": "string"},
                            {"name": "chainId", "type": "uint256"},
                            {"name": "verifyingContract", "type": "address"},
                        ],
                        **typed["types"],
                    },
                    "primaryType": "TransferWithAuthorization",
                    "domain": typed["domain"],
                    "message": typed["message"],
                }
            )
            signer: str = Account.recover_message(message, signature=auth.signature)
            return Web3.to_checksum_address(signer)
        except Exception:
            return None

    def authorization_used(self, authorizer: str, nonce: str) -> bool:
        with self._lock:
            return bool(
                self.token.functions.authorizationState(
                    Web3.to_checksum_address(authorizer), bytes.fromhex(nonce.removeprefix("0x"))
                ).call()
            )

    # -- writes ------------------------------------------------------------------------

    def _send(self, account: Any, fn: Any, gas: int = 200_000) -> Any:
        tx = fn.build_transaction(
            {
                "from": account.address,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "chainId": self.chain_id,
                "gas": gas,
                "gasPrice": self._gas_price or self.w3.eth.gas_price,
            }
        )
        signed = account.sign_transaction(tx)
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        return self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)

    def settle(self, auth: Authorization) -> Settlement:
        if self._facilitator is None:
            return Settlement(False, "", "no facilitator key is configured for this chain")
        fn = self.token.functions.transferWithAuthorization(
            Web3.to_checksum_address(auth.sender),
            Web3.to_checksum_address(auth.receiver),
            auth.value,
            auth.valid_after,
            auth.valid_before,
            bytes.fromhex(auth.nonce.removeprefix("0x")),
            bytes.fromhex(auth.signature.removeprefix("0x")),
        )
        with self._lock:
            try:
                fn.call({"from": self._facilitator.address})
            except Exception as e:
                return Settlement(False, "", f"simulation reverted: {e}")
            receipt = self._send(self._facilitator, fn)
            tx_hash = _hex(receipt["transactionHash"]).lower()
            if int(receipt["status"]) != 1:
                return Settlement(False, tx_hash, "transaction reverted")
            for entry in receipt["logs"]:
                if Web3.to_checksum_address(entry["address"]) != self.token_address:
                    continue
                transfer = self._decode(entry)
                if transfer is not None:
                    return Settlement(True, tx_hash, transfer=transfer)
        return Settlement(False, tx_hash, "no Transfer log in the receipt")


def connect_base(
    rpc_url: str,
    *,
    receiving_address: str,
    facilitator_key: str | None,
    token_address: str = BASE_USDC,
) -> Web3Chain:
    """The real Base adapter: refuses to start on the wrong chain or token."""
    from web3 import HTTPProvider

    w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 20}))
    chain_id = int(w3.eth.chain_id)
    if chain_id != BASE_CHAIN_ID:
        raise ChainError(f"RPC {rpc_url!r} is chain {chain_id}, expected Base ({BASE_CHAIN_ID})")
    code = w3.eth.get_code(Web3.to_checksum_address(token_address))
    if not code:
        raise ChainError(f"no contract at the USDC address {token_address}")
    token = w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=ERC20_ABI)
    if int(token.functions.decimals().call()) != 6:
        raise ChainError("the USDC contract does not have 6 decimals")
    genesis = w3.eth.get_block(0)["hash"]
    return Web3Chain(
        w3,
        provider="base-rpc",
        chain_id=chain_id,
        token_address=token_address,
        receiving_address=receiving_address,
        facilitator_key=facilitator_key,
        instance_id=_hex(genesis).lower(),
        token_name=str(token.functions.name().call()),
        token_version=str(token.functions.version().call()),
    )


class DevChain(Web3Chain):
    """An in-process EVM (eth-tester + py-evm) with the test USDC deployed.

    Lives in memory: a server restart starts a new chain (new ``instance_id``); the
    contract lands at the same address because the deployer and its nonce are the same.
    """

    def __init__(self, *, chain_id: int = BASE_CHAIN_ID) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider
        from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

        backend = PyEVMBackend()
        # eth-tester's chain class is created per backend: give it the requested id.
        type(backend.chain).chain_id = chain_id
        endpoints = {k: dict(v) for k, v in API_ENDPOINTS.items()}
        endpoints["eth"]["chainId"] = static_return(chain_id)
        self.tester = EthereumTester(backend)
        w3 = Web3(EthereumTesterProvider(self.tester, api_endpoints=endpoints))
        keys = [k.to_hex() for k in backend.account_keys]
        self._keys = {Account.from_key(k).address: k for k in keys}
        deployer = Account.from_key(keys[0])
        receiver = Account.from_key(keys[1])
        artifact = test_usdc_artifact()
        contract = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        tx = contract.constructor().build_transaction(
            {
                "from": deployer.address,
                "nonce": 0,
                "chainId": chain_id,
                "gas": 3_000_000,
                "gasPrice": w3.eth.gas_price,
            }
        )
        tx_hash = w3.eth.send_raw_transaction(deployer.sign_transaction(tx).raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
        genesis = _hex(w3.eth.get_block(0)["hash"]).lower()
        super().__init__(
            w3,
            provider="local-evm",
            chain_id=chain_id,
            token_address=str(receipt["contractAddress"]),
            receiving_address=receiver.address,
            facilitator_key=keys[0],
            instance_id=f"{genesis}:{time.time_ns()}",
            gas_price_wei=int(w3.eth.gas_price),
        )
        self._deployer = deployer
        self.full = w3.eth.contract(address=self.token_address, abi=artifact["abi"])
        log.info(
            "dev_chain_started",
            chain_id=chain_id,
            usdc=self.token_address,
            receiving_address=self.receiving_address,
        )

    # -- developer levers ---------------------------------------------------------------

    def fund(self, wallet: str, units: int, *, eth_wei: int = 10**18) -> str:
        """Mint ``units`` test USDC to ``wallet`` and give it ETH for gas."""
        wallet = Web3.to_checksum_address(wallet)
        with self._lock:
            receipt = self._send(self._deployer, self.full.functions.mint(wallet, units))
            if eth_wei and self.w3.eth.get_balance(wallet) < eth_wei // 2:
                tx = {
                    "to": wallet,
                    "value": eth_wei,
                    "gas": 21_000,
                    "chainId": self.chain_id,
                    "gasPrice": self._gas_price,
                    "nonce": self.w3.eth.get_transaction_count(self._deployer.address),
                }
                signed = self._deployer.sign_transaction(tx)
                self.w3.eth.wait_for_transaction_receipt(
                    self.w3.eth.send_raw_transaction(signed.raw_transaction)
                )
            return _hex(receipt["transactionHash"]).lower()

    def transfer_from_key(
        self, private_key: str, receiver: str, units: int, *, token: Any = None
    ) -> TokenTransfer:
        """Send a plain USDC transfer signed with ``private_key`` (dev wallets)."""
        account = Account.from_key(private_key)
        contract = token if token is not None else self.full
        with self._lock:
            receipt = self._send(
                account,
                contract.functions.transfer(Web3.to_checksum_address(receiver), units),
                gas=100_000,
            )
            if int(receipt["status"]) != 1:
                raise ChainError("transfer reverted")
            for entry in receipt["logs"]:
                transfer = self._decode(entry)
                if transfer is not None:
                    return transfer
        raise ChainError("no Transfer log")

    def key_for(self, address: str) -> str | None:
        """Private key of one of the dev chain's own prefunded accounts, if it is one."""
        return self._keys.get(Web3.to_checksum_address(address))

    def send_raw(self, raw_tx: str) -> dict[str, Any]:
        with self._lock:
            tx_hash = self.w3.eth.send_raw_transaction(bytes.fromhex(raw_tx.removeprefix("0x")))
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash)
            return {
                "tx_hash": _hex(tx_hash).lower(),
                "status": int(receipt["status"]),
                "block_number": int(receipt["blockNumber"]),
            }

    def account(self, address: str) -> dict[str, Any]:
        wallet = Web3.to_checksum_address(address)
        with self._lock:
            return {
                "address": wallet,
                "usdc_units": self.balance_of(wallet),
                "eth_wei": int(self.w3.eth.get_balance(wallet)),
                "nonce": int(self.w3.eth.get_transaction_count(wallet, "pending")),
            }

    def mine(self, blocks: int = 1) -> BlockRef:
        with self._lock:
            self.tester.mine_blocks(blocks)
        return self.head()

    def time_travel(self, seconds: int) -> BlockRef:
        """Move block time forward (mines a block at now + seconds)."""
        with self._lock:
            latest = self.w3.eth.get_block("latest")
            self.tester.time_travel(int(latest["timestamp"]) + seconds)
        return self.head()

    def snapshot(self) -> Any:
        with self._lock:
            return self.tester.take_snapshot()

    def revert(self, snapshot: Any) -> None:
        with self._lock:
            self.tester.revert_to_snapshot(snapshot)
            self._timestamps.clear()

    def deploy_other_token(self) -> Any:
        """Another token with the same code (for wrong-contract tests)."""
        artifact = test_usdc_artifact()
        contract = self.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
        with self._lock:
            receipt = self._send(self._deployer, contract.constructor(), gas=3_000_000)
        return self.w3.eth.contract(address=receipt["contractAddress"], abi=artifact["abi"])

    def info(self) -> dict[str, Any]:
        head = self.head()
        return {
            "provider": self.provider,
            "chain_id": self.chain_id,
            "usdc": self.token_address,
            "receiving_address": self.receiving_address,
            "block_number": head.number,
            "block_timestamp": head.timestamp,
            "instance_id": self.instance_id,
            "gas_price_wei": self._gas_price,
        }
