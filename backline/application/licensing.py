"""Licensing use cases: request a license (402), match a transfer, settle an x402
authorization, issue the signed license document, sign download links.

Payer binding (see ``domain/licensing.py``): every open payment has a unique amount
(price + a suffix below one cent) held by an ``AmountClaim``; the transfer path also
requires the declared ``paying_wallet`` as the log's sender. On the x402 path the
EIP-3009 signature itself proves the payer; when a wallet was declared it must be the
authorization's ``from``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog

from backline.application.chain import Authorization, ChainPort, TokenTransfer
from backline.application.ports import Clock, SystemClock
from backline.application.store import EventStore, retrying
from backline.domain.catalog import FORMATS, LICENSE_TYPES, format_usdc
from backline.domain.errors import Conflict, DomainError, NotFound, ValidationFailed
from backline.domain.licensing import (
    AMOUNT_SUFFIX_SPACE,
    AmountClaim,
    License,
    TransferClaim,
    amount_claim_id,
    sign_document,
    transfer_claim_id,
)

log = structlog.get_logger(__name__)

WALLET_RE = re.compile(r"^0x[a-fA-F0-9]{40}$")
TrackLookup = Callable[[int], "dict[str, Any] | None"]


class PaymentRejected(DomainError):
    """An x402 payment payload was refused (answered 402 with the reason)."""

    code = "invalid_payment"


@dataclass(frozen=True)
class LicensingConfig:
    public_url: str
    signing_key: bytes
    payment_window: timedelta = timedelta(minutes=15)
    confirmations: int = 1
    download_ttl_seconds: int = 3600
    licensor: str = "Backline"
    amount_hold: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class PaymentView:
    """What the verify endpoint answers from."""

    license: License
    status: str  # awaiting_payment | license_issued | expired


def validate_wallet(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not WALLET_RE.match(value):
        raise ValidationFailed(
            "The paying wallet format is invalid.",
            code="validation_failed",
            errors={"paying_wallet": ["The paying wallet must be a 0x address (40 hex digits)."]},
        )
    return value


class LicensingService:
    def __init__(
        self,
        store: EventStore,
        chain: ChainPort,
        tracks: TrackLookup,
        config: LicensingConfig,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.chain = chain
        self.tracks = tracks
        self.config = config
        self.clock = clock or SystemClock()
        self._settling: set[UUID] = set()
        self._settling_lock = threading.Lock()

    # -- 402: request a payment ---------------------------------------------------------

    def request(self, track_id: int, license_type: str, paying_wallet: str | None) -> License:
        if license_type not in LICENSE_TYPES:
            raise ValidationFailed(
                "The selected license type is invalid.",
                code="validation_failed",
                errors={
                    "license_type": [
                        f"The license type must be one of: {', '.join(LICENSE_TYPES)}."
                    ]
                },
            )
        wallet = validate_wallet(paying_wallet)
        row = self.tracks(track_id)
        if row is None:
            raise NotFound(
                "Track not found or not available for licensing.", code="track_not_found"
            )
        option = row["license_options"].get(license_type)
        if option is None:
            raise NotFound(
                "Track not found or not available for licensing.", code="license_type_unavailable"
            )
        price = int(option["price_units"])
        head = self.chain.head()
        now = self.clock.now()
        # The window is judged by block time: start it at the chain's clock when it runs ahead.
        start = max(now, datetime.fromtimestamp(head.timestamp, UTC))
        expires_at = start + self.config.payment_window
        track = {
            "id": row["id"],
            "title": row["title"],
            "artists": row["artists"],
            "external_id": row["external_id"],
            "formats": row["formats"],
            "demo": bool(row.get("demo")),
        }
        terms = {
            k: option[k]
            for k in ("name", "description", "term", "exclusivity", "territories", "permitted_uses")
        }
        terms["type"] = license_type
        terms["price_usdc"] = format_usdc(price)

        def attempt() -> License:
            hold_until = expires_at + self.config.amount_hold
            chosen: tuple[int, AmountClaim | None] | None = None
            for _ in range(40):
                amount = price + 1 + secrets.randbelow(AMOUNT_SUFFIX_SPACE)
                claim_id = amount_claim_id(
                    self.chain.chain_id,
                    self.chain.token_address,
                    self.chain.receiving_address,
                    amount,
                )
                existing = self.store.find(claim_id, AmountClaim)
                if existing is None or existing.hold_until <= now:
                    chosen = (amount, existing)
                    break
            if chosen is None:
                raise Conflict(
                    "Too many open payments for this price; retry shortly.",
                    code="amounts_exhausted",
                )
            amount, claim = chosen
            lic = License(
                track_id=track_id,
                license_type=license_type,
                price_units=price,
                amount_units=amount,
                paying_wallet=wallet,
                receiving_address=self.chain.receiving_address,
                token_contract=self.chain.token_address,
                chain_id=self.chain.chain_id,
                chain_instance=self.chain.instance_id,
                created_block=head.number,
                created_at=now,
                expires_at=expires_at,
                track=track,
                terms=terms,
                payees=list(row["payees"]),
            )
            if claim is None:
                claim = AmountClaim(
                    chain_id=self.chain.chain_id,
                    token=self.chain.token_address.lower(),
                    receiver=self.chain.receiving_address.lower(),
                    amount_units=amount,
                    payment_id=lic.id,
                    hold_until=hold_until,
                )
            else:
                claim.reassign(lic.id, hold_until, now)
            self.store.save_all(lic, claim)
            return lic

        lic = retrying(attempt)
        log.info(
            "license_payment_requested",
            payment_id=str(lic.id),
            track_id=track_id,
            license_type=license_type,
            amount_units=lic.amount_units,
        )
        return lic

    def get(self, payment_id: UUID) -> License:
        return self.store.get(payment_id, License, what="payment")

    # -- the transfer path (chain watcher) --------------------------------------------------

    def check(self, payment_id: UUID) -> PaymentView:
        """Match a confirmed transfer, or expire by block time; return the current state."""
        lic = self.get(payment_id)
        if not lic.is_open:
            return PaymentView(lic, lic.status)
        if lic.chain_instance != self.chain.instance_id or lic.chain_id != self.chain.chain_id:
            # Made on a chain that no longer exists (dev chain restart): it can only expire.
            return self._maybe_expire(lic, pending=False)
        head = self.chain.head()
        confirmed_to = head.number - max(1, self.config.confirmations) + 1
        pending = False
        if lic.paying_wallet is not None:
            candidates = self.chain.transfers(
                sender=lic.paying_wallet,
                receiver=lic.receiving_address,
                from_block=lic.created_block + 1,
                to_block=head.number,
            )
            for transfer in candidates:
                if not lic.accepts_transfer(
                    token=transfer.token,
                    sender=transfer.sender,
                    receiver=transfer.receiver,
                    value=transfer.value,
                    block_number=transfer.block_number,
                    block_timestamp=transfer.block_timestamp,
                ):
                    continue
                if transfer.block_number > confirmed_to:
                    pending = True
                    continue
                if self._claimed(transfer):
                    continue
                try:
                    return self._pay_and_issue(payment_id, transfer, method="transfer")
                except _AlreadyClaimed:
                    continue
        return self._maybe_expire(lic, pending=pending)

    def _maybe_expire(self, lic: License, *, pending: bool) -> PaymentView:
        head = self.chain.head() if lic.chain_instance == self.chain.instance_id else None
        block_time = head.timestamp if head else int(self.clock.now().timestamp())
        if pending or block_time <= int(lic.expires_at.timestamp()):
            return PaymentView(lic, "awaiting_payment")

        def attempt() -> License:
            fresh = self.get(lic.id)
            if fresh.is_open:
                fresh.expire(head.number if head else 0, block_time)
                self.store.save_all(fresh)
            return fresh

        fresh = retrying(attempt)
        return PaymentView(fresh, fresh.status)

    def _claimed(self, transfer: TokenTransfer) -> bool:
        claim_id = transfer_claim_id(
            self.chain.chain_id, transfer.token, transfer.tx_hash, transfer.log_index
        )
        return self.store.find(claim_id, TransferClaim) is not None

    def _pay_and_issue(
        self, payment_id: UUID, transfer: TokenTransfer, *, method: str
    ) -> PaymentView:
        from eventsourcing.persistence import IntegrityError

        def attempt() -> License:
            lic = self.get(payment_id)
            if not lic.is_open:
                return lic
            if self._claimed(transfer):
                raise _AlreadyClaimed
            claim = TransferClaim(
                chain_id=self.chain.chain_id,
                token=transfer.token.lower(),
                tx_hash=transfer.tx_hash,
                log_index=transfer.log_index,
                payment_id=payment_id,
            )
            lic.record_payment(
                method=method,
                payer=transfer.sender,
                tx_hash=transfer.tx_hash,
                log_index=transfer.log_index,
                block_number=transfer.block_number,
                block_timestamp=transfer.block_timestamp,
                amount_units=transfer.value,
            )
            issued_at = self.clock.now()
            lic.issue(issued_at, self._document(lic, issued_at))
            try:
                self.store.save_all(lic, claim)
            except IntegrityError:
                if self._claimed(transfer):
                    raise _AlreadyClaimed from None
                raise
            return lic

        lic = retrying(attempt)
        log.info(
            "license_issued", payment_id=str(payment_id), method=method, tx_hash=transfer.tx_hash
        )
        return PaymentView(lic, lic.status)

    # -- the x402 path --------------------------------------------------------------------

    def find_open_by_amount(self, receiver: str, amount_units: int) -> UUID | None:
        claim = self.store.find(
            amount_claim_id(self.chain.chain_id, self.chain.token_address, receiver, amount_units),
            AmountClaim,
        )
        if claim is None or claim.hold_until <= self.clock.now():
            return None
        return claim.payment_id

    def settle_x402(
        self, track_id: int, license_type: str, auth: Authorization, payment_id: UUID | None = None
    ) -> PaymentView:
        """Verify an EIP-3009 authorization against an open payment and settle it."""
        if payment_id is None:
            payment_id = self.find_open_by_amount(auth.receiver, auth.value)
        if payment_id is None:
            raise PaymentRejected(
                "No open payment matches this authorization's amount.",
                code="invalid_exact_evm_payload_authorization_value",
            )
        # One settlement per payment at a time (in this process): a second authorization
        # racing the first must not move the payer's money for a license already paid.
        with self._settling_lock:
            if payment_id in self._settling:
                raise PaymentRejected(
                    "This payment is being settled.", code="payment_settlement_in_progress"
                )
            self._settling.add(payment_id)
        try:
            return self._settle_x402(track_id, license_type, auth, payment_id)
        finally:
            with self._settling_lock:
                self._settling.discard(payment_id)

    def _settle_x402(
        self, track_id: int, license_type: str, auth: Authorization, payment_id: UUID
    ) -> PaymentView:
        lic = self.store.find(payment_id, License)
        if lic is None or lic.track_id != track_id or lic.license_type != license_type:
            raise PaymentRejected(
                "The authorization is for another payment.", code="invalid_payment_requirements"
            )
        if lic.status == "license_issued":
            raise PaymentRejected(
                "This payment was already settled.", code="payment_already_settled"
            )
        if not lic.is_open:
            raise PaymentRejected("The payment window has expired.", code="payment_expired")
        if lic.chain_instance != self.chain.instance_id:
            raise PaymentRejected(
                "The payment was made for another chain instance.", code="invalid_network"
            )
        if auth.receiver.lower() != lic.receiving_address.lower():
            raise PaymentRejected(
                "The authorization pays another recipient.",
                code="invalid_exact_evm_payload_recipient_mismatch",
            )
        if auth.value != lic.amount_units:
            raise PaymentRejected(
                "The authorization amount is not this payment's amount.",
                code="invalid_exact_evm_payload_authorization_value",
            )
        if lic.paying_wallet and auth.sender.lower() != lic.paying_wallet.lower():
            raise PaymentRejected(
                "The authorization is not from the declared paying wallet.",
                code="invalid_exact_evm_payload_authorization_from",
            )
        head = self.chain.head()
        if head.timestamp > int(lic.expires_at.timestamp()):
            raise PaymentRejected("The payment window has expired.", code="payment_expired")
        if auth.valid_before <= head.timestamp + 6:
            raise PaymentRejected(
                "The authorization has expired.",
                code="invalid_exact_evm_payload_authorization_valid_before",
            )
        if auth.valid_after >= head.timestamp:
            raise PaymentRejected(
                "The authorization is not valid yet.",
                code="invalid_exact_evm_payload_authorization_valid_after",
            )
        signer = self.chain.recover_authorizer(auth)
        if signer is None or signer.lower() != auth.sender.lower():
            raise PaymentRejected(
                "The signature does not match the payer for this chain and token.",
                code="invalid_exact_evm_payload_signature",
            )
        if self.chain.authorization_used(auth.sender, auth.nonce):
            raise PaymentRejected(
                "This authorization nonce was already used.",
                code="invalid_exact_evm_payload_authorization_nonce",
            )
        if self.chain.balance_of(auth.sender) < auth.value:
            raise PaymentRejected("The payer's balance is too low.", code="insufficient_funds")
        settlement = self.chain.settle(auth)
        if not settlement.success or settlement.transfer is None:
            raise PaymentRejected(
                f"Settlement failed: {settlement.error}", code="settlement_failed"
            )
        transfer = settlement.transfer
        if (
            transfer.receiver.lower() != lic.receiving_address.lower()
            or transfer.value != lic.amount_units
        ):
            raise PaymentRejected("Settled transfer does not match.", code="settlement_failed")
        try:
            return self._pay_and_issue(payment_id, transfer, method="x402")
        except _AlreadyClaimed:
            raise PaymentRejected(
                "This transfer was already claimed.", code="payment_already_settled"
            ) from None

    # -- documents and downloads ------------------------------------------------------------

    def _document(self, lic: License, issued_at: datetime) -> dict[str, Any]:
        from backline.domain.licensing import license_id_for

        payment = lic.payment or {}
        payees = []
        for p in lic.payees:
            share = lic.price_units * int(p["share_bps"]) // 10_000
            payees.append({**p, "amount_usdc": format_usdc(share) if share else "0.00"})
        doc = {
            "license_id": str(license_id_for(lic.id)),
            "issued_at": issued_at.astimezone(UTC).isoformat(),
            "licensor": self.config.licensor,
            "licensor_url": self.config.public_url,
            "licensee_wallet": payment.get("payer"),
            "track": lic.track,
            "license": lic.terms,
            "payment": {
                "payment_id": str(lic.id),
                "method": payment.get("method"),
                "chain": "base",
                "chain_id": lic.chain_id,
                "token": "USDC",
                "token_contract": lic.token_contract,
                "receiving_address": lic.receiving_address,
                "amount_usdc": format_usdc(lic.amount_units),
                "amount_units": lic.amount_units,
                "payer": payment.get("payer"),
                "tx_hash": payment.get("tx_hash"),
                "log_index": payment.get("log_index"),
                "block_number": payment.get("block_number"),
            },
            "payees": payees,
        }
        return sign_document(doc, self.config.signing_key)

    def _download_mac(self, payment_id: UUID, fmt: str, expires: int) -> str:
        msg = f"download:{payment_id}:{fmt}:{expires}".encode()
        return hmac.new(self.config.signing_key, msg, hashlib.sha256).hexdigest()

    def download_urls(self, lic: License) -> dict[str, str | None]:
        expires = int(self.clock.now().timestamp()) + self.config.download_ttl_seconds
        formats = lic.track.get("formats", {})
        out: dict[str, str | None] = {}
        for fmt in FORMATS:
            if not formats.get(fmt):
                out[fmt] = None
                continue
            sig = self._download_mac(lic.id, fmt, expires)
            out[fmt] = (
                f"{self.config.public_url}/api/v1/agent/downloads/{lic.id}/{fmt}"
                f"?expires={expires}&signature={sig}"
            )
        return out

    def check_download(self, payment_id: UUID, fmt: str, expires: int, signature: str) -> License:
        expected = self._download_mac(payment_id, fmt, expires)
        if not hmac.compare_digest(expected, signature or ""):
            raise NotFound("Download link is invalid.", code="invalid_download_link")
        if expires < int(self.clock.now().timestamp()):
            raise DownloadExpired(
                "Download link has expired; poll the verify URL for a new one.",
                code="download_link_expired",
            )
        lic = self.get(payment_id)
        if lic.status != "license_issued":
            raise NotFound("Download link is invalid.", code="invalid_download_link")
        return lic


class DownloadExpired(DomainError):
    code = "download_link_expired"


class _AlreadyClaimed(Exception):
    """The transfer was claimed by another payment."""
