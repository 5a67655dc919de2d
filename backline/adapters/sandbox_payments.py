"""The offline payments default: ``sandbox``. No Stripe key, no network, no money.

Its hosted URL is a page on this server (``/sandbox/checkout/<id>``) where the buyer
picks a test card; completing it builds the same ``checkout.session.completed`` event
Stripe would send, signs it with the sandbox webhook secret and feeds it to the same
webhook handler — so a sandbox purchase takes exactly the path a real one takes.
Off-session charges (auto-reload) succeed, decline or ask for authentication depending
on the test card saved. Every response names ``sandbox``; production mode refuses it.

State (sessions, payment intents, cards) lives in the shared key-value table so every
server process sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import stripe

from backline.adapters.stripe_payments import verify_stripe_signature
from backline.application.payments import (
    CardDetails,
    ChargeResult,
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentProviderUnavailable,
    VerifiedEvent,
)
from backline.domain.errors import NotFound, ValidationFailed

SESSION_TTL = timedelta(hours=24)
PUBLISHABLE_KEY = "pk_sandbox_backline"

# Test cards, named like Stripe's: what happens when the saved card is charged later.
TEST_CARDS: dict[str, dict[str, str]] = {
    "visa": {"brand": "visa", "last4": "4242", "charge": "succeeded"},
    "charge_declined": {"brand": "visa", "last4": "0341", "charge": "declined"},
    "authentication_required": {"brand": "visa", "last4": "3184", "charge": "authentication"},
}


class SandboxStorage(Protocol):
    def set(self, namespace: str, key: str, value: bytes, expires_in: float | None) -> None: ...

    def get(self, namespace: str, key: str, renew_for: float | None = None) -> bytes | None: ...


def sandbox_webhook_secret(secret_key: str) -> str:
    digest = hmac.new(secret_key.encode(), b"backline-sandbox-webhook", hashlib.sha256).hexdigest()
    return f"whsec_sandbox_{digest[:40]}"


def _token(n: int = 18) -> str:
    return secrets.token_urlsafe(n).replace("-", "x").replace("_", "y")


class SandboxPayments:
    provider = "sandbox"
    NS = "sandbox_payments"

    def __init__(
        self,
        storage: SandboxStorage,
        *,
        public_url: str,
        webhook_secret: str,
        production: bool = False,
    ) -> None:
        self.storage = storage
        self.public_url = public_url.rstrip("/")
        self.webhook_secret = webhook_secret
        self.production = production

    def _refuse_in_production(self) -> None:
        if self.production:
            raise PaymentProviderUnavailable(
                "The sandbox payment provider is disabled in production; configure Stripe "
                "(BACKLINE_STRIPE_SECRET_KEY)."
            )

    def _put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.storage.set(
            self.NS, f"{kind}:{key}", msgspec.json.encode(value), SESSION_TTL.total_seconds() * 30
        )

    def _get(self, kind: str, key: str) -> dict[str, Any] | None:
        raw = self.storage.get(self.NS, f"{kind}:{key}")
        if raw is None:
            return None
        value: dict[str, Any] = msgspec.json.decode(raw)
        return value

    # -- the port -------------------------------------------------------------------------

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        self._refuse_in_production()
        session_id = f"cs_sandbox_{_token()}"
        expires_at = datetime.now(UTC) + SESSION_TTL
        customer = request.customer_id or f"cus_sandbox_{_token(9)}"
        self._put(
            "session",
            session_id,
            {
                "id": session_id,
                "amount_total": request.amount_cents,
                "currency": request.currency,
                "customer": customer,
                "metadata": request.metadata,
                "success_url": request.success_url,
                "cancel_url": request.cancel_url,
                "save_payment_method": request.save_payment_method,
                "ui_mode": request.ui_mode,
                "credits": request.credits,
                "status": "open",
                "expires_at": int(expires_at.timestamp()),
            },
        )
        return CheckoutSession(
            id=session_id,
            amount_total=request.amount_cents,
            currency=request.currency,
            expires_at=expires_at,
            url=f"{self.public_url}/sandbox/checkout/{session_id}"
            if request.ui_mode == "hosted"
            else None,
            client_secret=f"{session_id}_secret_{_token(12)}"
            if request.ui_mode == "embedded"
            else None,
            publishable_key=PUBLISHABLE_KEY,
            provider=self.provider,
        )

    def charge_off_session(self, charge: OffSessionCharge) -> ChargeResult:
        self._refuse_in_production()
        previous = self._get("charge", charge.idempotency_key)
        if previous is not None:  # Stripe's idempotency: same key, same result
            return ChargeResult(**previous)
        card = self._get("pm", charge.payment_method_id)
        pi_id = f"pi_sandbox_{_token()}"
        if card is None:
            result = ChargeResult("declined", pi_id, "resource_missing", "No such payment method.")
        elif card["charge"] == "succeeded":
            result = ChargeResult("succeeded", pi_id)
        elif card["charge"] == "authentication":
            result = ChargeResult(
                "authentication_required",
                pi_id,
                "authentication_required",
                "The bank asks the cardholder to authenticate this payment.",
            )
        else:
            result = ChargeResult("declined", pi_id, "card_declined", "Your card was declined.")
        self._put(
            "charge",
            charge.idempotency_key,
            {
                "status": result.status,
                "payment_intent_id": result.payment_intent_id,
                "code": result.code,
                "message": result.message,
            },
        )
        return result

    def card_of_payment(self, payment_intent_id: str) -> CardDetails | None:
        pi = self._get("pi", payment_intent_id)
        if pi is None or not pi.get("payment_method"):
            return None
        card = self._get("pm", pi["payment_method"]) or {}
        return CardDetails(
            payment_method_id=pi["payment_method"],
            customer_id=pi.get("customer", ""),
            brand=card.get("brand", "visa"),
            last4=card.get("last4", ""),
            exp_month=12,
            exp_year=datetime.now(UTC).year + 3,
        )

    def verify_webhook(self, payload: bytes, signature: str) -> VerifiedEvent:
        return verify_stripe_signature(payload, signature, self.webhook_secret)

    # -- the hosted page's side -------------------------------------------------------------

    def session(self, session_id: str) -> dict[str, Any]:
        self._refuse_in_production()
        found = self._get("session", session_id) if session_id.startswith("cs_sandbox_") else None
        if found is None:
            raise NotFound("Checkout session not found.", code="checkout_session_not_found")
        return found

    def complete(self, session_id: str, card: str) -> tuple[bytes, str, str]:
        """Pay a session with a test card; return (event payload, signature, return URL)."""
        s = self.session(session_id)
        if card not in TEST_CARDS:
            raise ValidationFailed("Unknown test card.", code="invalid_card", field="card")
        if s["status"] != "open":
            raise ValidationFailed(
                "This checkout session is already complete.", code="session_complete"
            )
        if s["expires_at"] < time.time():
            raise ValidationFailed("This checkout session has expired.", code="session_expired")
        pi_id = f"pi_sandbox_{_token()}"
        pm_id = f"pm_sandbox_{card}_{_token(9)}"
        self._put("pm", pm_id, {**TEST_CARDS[card], "customer": s["customer"]})
        self._put(
            "pi",
            pi_id,
            {
                "payment_method": pm_id,
                "customer": s["customer"],
                "amount": s["amount_total"],
                "save": s["save_payment_method"],
            },
        )
        s["status"] = "complete"
        s["payment_intent"] = pi_id
        self._put("session", session_id, s)
        event = {
            "id": f"evt_sandbox_{_token()}",
            "object": "event",
            "api_version": "2025-09-30.clover",
            "created": int(time.time()),
            "livemode": False,
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": session_id,
                    "object": "checkout.session",
                    "mode": "payment",
                    "status": "complete",
                    "payment_status": "paid",
                    "amount_total": s["amount_total"],
                    "currency": s["currency"],
                    "customer": s["customer"],
                    "payment_intent": pi_id,
                    "client_reference_id": s["metadata"].get("user_id"),
                    "metadata": s["metadata"],
                    "ui_mode": "hosted_page" if s["ui_mode"] == "hosted" else "embedded_page",
                }
            },
        }
        payload = msgspec.json.encode(event)
        signature = stripe.WebhookSignature.generate_signature_header(
            payload.decode(), self.webhook_secret
        )
        return_url = str(s["success_url"]).replace("{CHECKOUT_SESSION_ID}", session_id)
        return payload, signature, return_url
