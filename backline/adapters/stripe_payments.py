"""The real payments adapter: Stripe through the official ``stripe`` SDK (v16).

The API base URL is configurable (``BACKLINE_STRIPE_API_BASE``) so tests point the real
SDK at a local peer (localstripe for customers/payment methods/PaymentIntents, a named
fake for Checkout Sessions). Product UI modes map to Stripe's current names:
``hosted`` → ``hosted_page``, ``embedded`` → ``embedded_page``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import stripe
import structlog

from backline.application.payments import (
    CardDetails,
    ChargeResult,
    CheckoutRequest,
    CheckoutSession,
    InvalidWebhook,
    OffSessionCharge,
    PaymentProviderUnavailable,
    VerifiedEvent,
)

log = structlog.get_logger(__name__)

UI_MODES = {"hosted": "hosted_page", "embedded": "embedded_page"}
WEBHOOK_TOLERANCE_SECONDS = 300


def verify_stripe_signature(
    payload: bytes, signature: str, secret: str, *, tolerance: int = WEBHOOK_TOLERANCE_SECONDS
) -> VerifiedEvent:
    """Check a ``Stripe-Signature`` header with the SDK; decode the event."""
    if not secret:
        raise InvalidWebhook("no webhook secret configured")
    try:
        stripe.WebhookSignature.verify_header(
            payload.decode("utf-8"), signature or "", secret, tolerance
        )
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as e:
        raise InvalidWebhook(str(e)) from None
    try:
        data = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        raise InvalidWebhook("body is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidWebhook("body is not an event object")
    obj = (data.get("data") or {}).get("object") if isinstance(data.get("data"), dict) else None
    if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise InvalidWebhook("event has no id or type")
    if not isinstance(obj, dict):
        raise InvalidWebhook("event has no data.object")
    return VerifiedEvent(id=data["id"], type=data["type"], object=obj, raw=data)


def _unavailable(e: Exception) -> PaymentProviderUnavailable:
    log.warning("stripe_unavailable", error_type=type(e).__name__)
    return PaymentProviderUnavailable(
        "The payment provider is unavailable right now; nothing was charged. Try again shortly."
    )


class StripePayments:
    provider = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        publishable_key: str = "",
        webhook_secret: str = "",
        api_base: str | None = None,
        timeout: float = 20.0,
        max_network_retries: int = 1,
    ) -> None:
        self.publishable_key = publishable_key
        self.webhook_secret = webhook_secret
        http_client = stripe.HTTPXClient(timeout=timeout, allow_sync_methods=True)
        self.client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=http_client,
        )

    # -- checkout -----------------------------------------------------------------------

    def create_checkout_session(self, request: CheckoutRequest) -> CheckoutSession:
        intent_data: dict[str, Any] = {"metadata": dict(request.metadata)}
        if request.save_payment_method:
            intent_data["setup_future_usage"] = "off_session"
        params: dict[str, Any] = {
            "mode": "payment",
            "ui_mode": UI_MODES[request.ui_mode],
            "client_reference_id": request.account_id,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": request.currency,
                        "unit_amount": request.amount_cents,
                        "product_data": {"name": request.product_name},
                    },
                }
            ],
            "metadata": dict(request.metadata),
            "payment_intent_data": intent_data,
        }
        if request.ui_mode == "hosted":
            params["success_url"] = request.success_url
            params["cancel_url"] = request.cancel_url
        else:
            params["return_url"] = request.success_url
        if request.customer_id:
            params["customer"] = request.customer_id
        else:
            if request.email:
                params["customer_email"] = request.email
            if request.save_payment_method:
                params["customer_creation"] = "always"
        try:
            session = self.client.v1.checkout.sessions.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": request.idempotency_key},
            )
        except (stripe.APIConnectionError, stripe.AuthenticationError, stripe.APIError) as e:
            raise _unavailable(e) from None
        except stripe.StripeError as e:
            log.error("stripe_checkout_refused", code=getattr(e, "code", None))
            raise _unavailable(e) from None
        data = session.to_dict()
        expires = data.get("expires_at")
        return CheckoutSession(
            id=str(data["id"]),
            amount_total=int(data.get("amount_total") or request.amount_cents),
            currency=str(data.get("currency") or request.currency),
            expires_at=datetime.fromtimestamp(int(expires), UTC)
            if isinstance(expires, int)
            else datetime.now(UTC),
            url=data.get("url") if request.ui_mode == "hosted" else None,
            client_secret=data.get("client_secret") if request.ui_mode == "embedded" else None,
            publishable_key=self.publishable_key or None,
            provider=self.provider,
        )

    # -- off-session charges ---------------------------------------------------------------

    def charge_off_session(self, charge: OffSessionCharge) -> ChargeResult:
        params: dict[str, Any] = {
            "amount": charge.amount_cents,
            "currency": charge.currency,
            "customer": charge.customer_id,
            "payment_method": charge.payment_method_id,
            "off_session": True,
            "confirm": True,
            # The description travels in metadata: it shows on the Dashboard either way.
            "metadata": {**charge.metadata, "description": charge.description},
        }
        try:
            intent = self.client.v1.payment_intents.create(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": charge.idempotency_key},
            )
        except stripe.CardError as e:
            err = e.error
            pi = getattr(err, "payment_intent", None) if err is not None else None
            pi_id = ""
            if pi is not None:
                pi_id = (
                    str(pi.get("id", "")) if isinstance(pi, dict) else str(getattr(pi, "id", ""))
                )
            code = str(e.code or "card_declined")
            status = "authentication_required" if code == "authentication_required" else "declined"
            return ChargeResult(
                status=status,  # type: ignore[arg-type]
                payment_intent_id=pi_id,
                code=code,
                message=str(e.user_message or "The card was declined."),
            )
        except (stripe.APIConnectionError, stripe.AuthenticationError, stripe.APIError) as e:
            raise _unavailable(e) from None
        except stripe.StripeError as e:
            log.error("stripe_charge_refused", code=getattr(e, "code", None), error=str(e)[:200])
            return ChargeResult(
                status="declined",
                code=str(getattr(e, "code", "") or "payment_failed"),
                message=str(getattr(e, "user_message", "") or "The payment failed."),
            )
        data = intent.to_dict()
        intent_status = data.get("status")
        if intent_status == "succeeded":
            return ChargeResult(status="succeeded", payment_intent_id=str(data["id"]))
        if intent_status == "processing":
            return ChargeResult(status="processing", payment_intent_id=str(data["id"]))
        if intent_status in ("requires_action", "requires_confirmation"):
            return ChargeResult(
                status="authentication_required",
                payment_intent_id=str(data["id"]),
                code="authentication_required",
                message="The bank asks the cardholder to authenticate this payment.",
            )
        error = data.get("last_payment_error") or {}
        return ChargeResult(
            status="declined",
            payment_intent_id=str(data["id"]),
            code=str(error.get("code") or "card_declined"),
            message=str(error.get("message") or "The card was declined."),
        )

    def card_of_payment(self, payment_intent_id: str) -> CardDetails | None:
        try:
            intent = self.client.v1.payment_intents.retrieve(payment_intent_id).to_dict()
            pm_id = intent.get("payment_method")
            if isinstance(pm_id, dict):
                pm_id = pm_id.get("id")
            if not isinstance(pm_id, str) or not pm_id:
                return None
            pm = self.client.v1.payment_methods.retrieve(pm_id).to_dict()
        except stripe.InvalidRequestError:
            return None
        except stripe.StripeError as e:
            raise _unavailable(e) from None
        card = pm.get("card") or {}
        customer = intent.get("customer") or pm.get("customer") or ""
        if isinstance(customer, dict):
            customer = customer.get("id", "")
        return CardDetails(
            payment_method_id=pm_id,
            customer_id=str(customer),
            brand=str(card.get("brand") or ""),
            last4=str(card.get("last4") or ""),
            exp_month=int(card.get("exp_month") or 0),
            exp_year=int(card.get("exp_year") or 0),
        )

    # -- customers (used by tests and operators; checkout creates them otherwise) -----------

    def create_customer(self, email: str, account_id: str) -> str:
        try:
            customer = self.client.v1.customers.create(
                params={"email": email, "metadata": {"user_id": account_id}}
            )
        except stripe.StripeError as e:
            raise _unavailable(e) from None
        return str(customer.id)

    def verify_webhook(self, payload: bytes, signature: str) -> VerifiedEvent:
        return verify_stripe_signature(payload, signature, self.webhook_secret)
