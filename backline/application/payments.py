"""The payments port: what billing needs from a card processor (Stripe or the sandbox)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from backline.domain.errors import DomainError

UiMode = Literal["hosted", "embedded"]
ChargeStatus = Literal["succeeded", "declined", "authentication_required", "processing"]


class PaymentProviderUnavailable(DomainError):
    """The card processor could not be reached or refused to work (maps to 503)."""

    code = "payment_provider_unavailable"


class InvalidWebhook(Exception):
    """A webhook whose signature (or body) does not verify: answer 400, change nothing."""


@dataclass(frozen=True)
class CheckoutRequest:
    account_id: str
    customer_id: str
    email: str
    credits: int
    amount_cents: int
    currency: str
    product_name: str
    ui_mode: UiMode
    success_url: str
    cancel_url: str
    save_payment_method: bool
    metadata: dict[str, str]
    idempotency_key: str


@dataclass(frozen=True)
class CheckoutSession:
    id: str
    amount_total: int
    currency: str
    expires_at: datetime
    url: str | None = None
    client_secret: str | None = None
    publishable_key: str | None = None
    provider: str = "stripe"


@dataclass(frozen=True)
class OffSessionCharge:
    customer_id: str
    payment_method_id: str
    amount_cents: int
    currency: str
    description: str
    metadata: dict[str, str]
    idempotency_key: str


@dataclass(frozen=True)
class ChargeResult:
    status: ChargeStatus
    payment_intent_id: str = ""
    code: str = ""
    message: str = ""


@dataclass(frozen=True)
class CardDetails:
    payment_method_id: str
    customer_id: str
    brand: str = ""
    last4: str = ""
    exp_month: int = 0
    exp_year: int = 0


@dataclass(frozen=True)
class VerifiedEvent:
    id: str
    type: str
    object: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)


class Payments(Protocol):
    """A card processor. ``provider`` names it in responses (``stripe`` / ``sandbox``)."""

    provider: str

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession: ...

    def charge_off_session(self, charge: OffSessionCharge) -> ChargeResult: ...

    def card_of_payment(self, payment_intent_id: str) -> CardDetails | None: ...

    def verify_webhook(self, payload: bytes, signature: str) -> VerifiedEvent: ...
