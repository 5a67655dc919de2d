"""The License aggregate: a payment request that becomes a signed license once paid.

Pure domain. The aggregate id *is* the public ``payment_id``. Rules:

- A payment is bound to its payer by a **unique amount**: the track's price plus a
  per-payment suffix in the last USDC units (below one cent), held by an
  :class:`AmountClaim` while the payment is open. A transfer matches a payment only if it
  comes from the declared wallet, to the receiving address, on the token contract, for
  exactly that amount, in a block after the payment's creation block and no later than
  its expiry (judged by block time). Someone else's transfer can never be the exact
  amount of your payment from your declared wallet.
- Each on-chain transfer (chain, token, tx hash, log index) is claimed once through a
  :class:`TransferClaim` saved in the same transaction as the payment it pays.
- The license document is signed with HMAC-SHA256 over its canonical JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict

TRANSFER_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/chain-transfer-claim")
AMOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/payment-amount-claim")
LICENSE_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/license")

# Suffixes live in the last four decimal places: at most 0.0099 USDC over the price.
AMOUNT_SUFFIX_SPACE = 9_999


def transfer_claim_id(chain_id: int, token: str, tx_hash: str, log_index: int) -> UUID:
    return uuid5(TRANSFER_NAMESPACE, f"{chain_id}:{token.lower()}:{tx_hash.lower()}:{log_index}")


def amount_claim_id(chain_id: int, token: str, receiver: str, amount_units: int) -> UUID:
    return uuid5(AMOUNT_NAMESPACE, f"{chain_id}:{token.lower()}:{receiver.lower()}:{amount_units}")


def license_id_for(payment_id: UUID) -> UUID:
    return uuid5(LICENSE_NAMESPACE, str(payment_id))


def canonical_json(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign_document(doc: dict[str, Any], key: bytes) -> dict[str, Any]:
    """Return ``doc`` with ``signature`` = hex HMAC-SHA256 of the rest, canonical JSON."""
    body = {k: v for k, v in doc.items() if k not in ("signature", "signature_algorithm")}
    body["signature_algorithm"] = "HMAC-SHA256"
    mac = hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()
    return {**body, "signature": mac}


def verify_document(doc: dict[str, Any], key: bytes) -> bool:
    sig = doc.get("signature")
    if not isinstance(sig, str) or doc.get("signature_algorithm") != "HMAC-SHA256":
        return False
    body = {k: v for k, v in doc.items() if k != "signature"}
    expected = hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, sig)


class License(Aggregate):
    """One license purchase: requested → paid → issued (or expired)."""

    TOPIC = "backline.License"

    class Created(Aggregate.Created):
        TOPIC = "backline.License.Created"

    class Event(Aggregate.Event):
        pass

    class Requested(Created):
        TOPIC = "backline.License.Requested"
        track_id: int
        license_type: str
        price_units: int
        amount_units: int
        paying_wallet: str | None
        receiving_address: str
        token_contract: str
        chain_id: int
        chain_instance: str
        created_block: int
        created_at: datetime
        expires_at: datetime
        track: dict[str, Any]
        terms: dict[str, Any]
        payees: list[dict[str, Any]]

    @event(Requested)
    def __init__(
        self,
        track_id: int,
        license_type: str,
        price_units: int,
        amount_units: int,
        paying_wallet: str | None,
        receiving_address: str,
        token_contract: str,
        chain_id: int,
        chain_instance: str,
        created_block: int,
        created_at: datetime,
        expires_at: datetime,
        track: dict[str, Any],
        terms: dict[str, Any],
        payees: list[dict[str, Any]],
    ) -> None:
        self.track_id = track_id
        self.license_type = license_type
        self.price_units = price_units
        self.amount_units = amount_units
        self.paying_wallet = paying_wallet
        self.receiving_address = receiving_address
        self.token_contract = token_contract
        self.chain_id = chain_id
        self.chain_instance = chain_instance
        self.created_block = created_block
        self.created_at = created_at
        self.expires_at = expires_at
        self.track = track
        self.terms = terms
        self.payees = payees
        self.status = "awaiting_payment"
        self.payment: dict[str, Any] | None = None
        self.document: dict[str, Any] | None = None
        self.issued_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "awaiting_payment"

    def accepts_transfer(
        self,
        *,
        token: str,
        sender: str,
        receiver: str,
        value: int,
        block_number: int,
        block_timestamp: int,
    ) -> bool:
        """The matching rule for a plain transfer (see module docstring)."""
        return (
            self.is_open
            and token.lower() == self.token_contract.lower()
            and receiver.lower() == self.receiving_address.lower()
            and self.paying_wallet is not None
            and sender.lower() == self.paying_wallet.lower()
            and value == self.amount_units
            and block_number > self.created_block
            and block_timestamp <= int(self.expires_at.timestamp())
        )

    class Paid(Event):
        TOPIC = "backline.License.Paid"
        method: str
        payer: str
        tx_hash: str
        log_index: int
        block_number: int
        block_timestamp: int
        amount_units: int

    @event(Paid)
    def _paid(
        self,
        method: str,
        payer: str,
        tx_hash: str,
        log_index: int,
        block_number: int,
        block_timestamp: int,
        amount_units: int,
    ) -> None:
        self.status = "paid"
        self.payment = {
            "method": method,
            "payer": payer,
            "tx_hash": tx_hash,
            "log_index": log_index,
            "block_number": block_number,
            "block_timestamp": block_timestamp,
            "amount_units": amount_units,
        }

    def record_payment(
        self,
        *,
        method: str,
        payer: str,
        tx_hash: str,
        log_index: int,
        block_number: int,
        block_timestamp: int,
        amount_units: int,
    ) -> None:
        if not self.is_open:
            raise Conflict("This payment is no longer awaiting payment.", code="payment_not_open")
        if amount_units != self.amount_units:
            raise Conflict("Amount does not match the payment.", code="amount_mismatch")
        self._paid(
            method=method,
            payer=payer,
            tx_hash=tx_hash,
            log_index=log_index,
            block_number=block_number,
            block_timestamp=block_timestamp,
            amount_units=amount_units,
        )

    class Issued(Event):
        TOPIC = "backline.License.Issued"
        license_id: UUID
        issued_at: datetime
        document: dict[str, Any]

    @event(Issued)
    def _issued(self, license_id: UUID, issued_at: datetime, document: dict[str, Any]) -> None:
        self.status = "license_issued"
        self.license_id = license_id
        self.issued_at = issued_at
        self.document = document

    def issue(self, issued_at: datetime, document: dict[str, Any]) -> None:
        if self.status != "paid":
            raise Conflict("A license is issued only after payment.", code="payment_not_paid")
        self._issued(license_id=license_id_for(self.id), issued_at=issued_at, document=document)

    class Expired(Event):
        TOPIC = "backline.License.Expired"
        block_number: int
        block_timestamp: int

    @event(Expired)
    def _expired(self, block_number: int, block_timestamp: int) -> None:
        self.status = "expired"

    def expire(self, block_number: int, block_timestamp: int) -> None:
        """Expire once the chain's block time has passed ``expires_at``."""
        if not self.is_open:
            raise Conflict("Only an open payment can expire.", code="payment_not_open")
        if block_timestamp <= int(self.expires_at.timestamp()):
            raise Conflict("The payment window is still open.", code="payment_window_open")
        self._expired(block_number=block_number, block_timestamp=block_timestamp)


class TransferClaim(Aggregate):
    """Claims one on-chain transfer log for one payment, forever."""

    TOPIC = "backline.TransferClaim"

    class Created(Aggregate.Created):
        TOPIC = "backline.TransferClaim.Created"

    class Claimed(Created):
        TOPIC = "backline.TransferClaim.Claimed"
        chain_id: int
        token: str
        tx_hash: str
        log_index: int
        payment_id: UUID

    @staticmethod
    def create_id(chain_id: int, token: str, tx_hash: str, log_index: int, **_: Any) -> UUID:
        return transfer_claim_id(chain_id, token, tx_hash, log_index)

    @event(Claimed)
    def __init__(
        self, chain_id: int, token: str, tx_hash: str, log_index: int, payment_id: UUID
    ) -> None:
        self.payment_id = payment_id


class AmountClaim(Aggregate):
    """Holds one exact amount (per chain, token, receiver) for one open payment."""

    TOPIC = "backline.AmountClaim"

    class Created(Aggregate.Created):
        TOPIC = "backline.AmountClaim.Created"

    class Event(Aggregate.Event):
        pass

    class Claimed(Created):
        TOPIC = "backline.AmountClaim.Claimed"
        chain_id: int
        token: str
        receiver: str
        amount_units: int
        payment_id: UUID
        hold_until: datetime

    @staticmethod
    def create_id(chain_id: int, token: str, receiver: str, amount_units: int, **_: Any) -> UUID:
        return amount_claim_id(chain_id, token, receiver, amount_units)

    @event(Claimed)
    def __init__(
        self,
        chain_id: int,
        token: str,
        receiver: str,
        amount_units: int,
        payment_id: UUID,
        hold_until: datetime,
    ) -> None:
        self.payment_id = payment_id
        self.hold_until = hold_until

    class Reassigned(Event):
        TOPIC = "backline.AmountClaim.Reassigned"
        payment_id: UUID
        hold_until: datetime

    @event(Reassigned)
    def _reassigned(self, payment_id: UUID, hold_until: datetime) -> None:
        self.payment_id = payment_id
        self.hold_until = hold_until

    def reassign(self, payment_id: UUID, hold_until: datetime, now: datetime) -> None:
        if now < self.hold_until:
            raise Conflict("This amount is held by an open payment.", code="amount_held")
        self._reassigned(payment_id=payment_id, hold_until=hold_until)
