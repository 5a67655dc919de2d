"""Billing use cases: checkout sessions, Stripe webhooks and auto-reload.

Webhooks are idempotent by construction: a checkout grants with ref
``checkout:<session id>`` and one payment buys credits once, so a replayed event, a
second event type for the same session, or two deliveries racing write nothing new.
Refunds and disputes take credits back to a target computed from the payment
(``reversal:<payment>:<target>``), so their replays and reorderings converge too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse
from uuid import UUID, uuid4, uuid5

import structlog

from backline.application.credits import CreditService
from backline.application.payments import (
    CardDetails,
    ChargeResult,
    CheckoutRequest,
    CheckoutSession,
    OffSessionCharge,
    PaymentProviderUnavailable,
    Payments,
    VerifiedEvent,
)
from backline.application.ports import Clock, SystemClock
from backline.application.store import EventStore, retrying
from backline.domain.account import Account
from backline.domain.billing import (
    AUTHENTICATION_REQUIRED,
    DECLINED,
    PROVIDER_ERROR,
    SUCCEEDED,
    BillingProfile,
    SavedCard,
    billing_profile_id,
    billing_profile_id_for_ledger,
)
from backline.domain.credits import MAX_TRANSACTION_CREDITS
from backline.domain.errors import Conflict, ValidationFailed
from backline.domain.pricing import CURRENCY, MAX_RELOAD_THRESHOLD, Quote, quote

log = structlog.get_logger(__name__)

CHECKOUT_SESSION_PLACEHOLDER = "{CHECKOUT_SESSION_ID}"
DEFAULT_RETURN_URL = "https://app.aimusicdistro.com/api/once/checkout-return"
MAX_URL = 2048
UNKNOWN_PAYMENT_GRACE_SECONDS = 3600


class PaymentNotRecorded(Conflict):
    """A refund/dispute for a payment we have not recorded (yet): Stripe redelivers."""

    code = "payment_not_recorded"


@dataclass(frozen=True)
class CheckoutCreated:
    session: CheckoutSession
    quote: Quote


@dataclass(frozen=True)
class WebhookOutcome:
    event_id: str
    type: str
    outcome: str
    position: int = 0


def with_session_id(url: str) -> str:
    """Append ``session_id={CHECKOUT_SESSION_ID}`` unless the URL already carries it."""
    if CHECKOUT_SESSION_PLACEHOLDER in url:
        return url
    sep = "&" if urlparse(url).query else "?"
    return f"{url}{sep}session_id={CHECKOUT_SESSION_PLACEHOLDER}"


def resolve_success_url(success_path: str | None, *, default: str, public_url: str) -> str:
    """The buyer's return URL: an https URL, or a path on this server."""
    if success_path is None or success_path == "":
        return with_session_id(default)
    if not isinstance(success_path, str) or len(success_path) > MAX_URL:
        raise ValidationFailed("successPath is not a valid URL.", code="invalid_success_path")
    if any(ch in success_path for ch in "\r\n\t "):
        raise ValidationFailed("successPath is not a valid URL.", code="invalid_success_path")
    if success_path.startswith("/") and not success_path.startswith("//"):
        return with_session_id(public_url.rstrip("/") + success_path)
    parsed = urlparse(success_path)
    local = parsed.hostname in ("localhost", "127.0.0.1", "::1")
    if (parsed.scheme == "https" or (parsed.scheme == "http" and local)) and parsed.netloc:
        return with_session_id(success_path)
    raise ValidationFailed(
        "successPath must be an https URL or a path starting with '/'.",
        code="invalid_success_path",
        field="successPath",
    )


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _id_of(value: Any) -> str:
    """Stripe expandable fields are an id string or an object with ``id``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return _str(value.get("id"))
    return ""


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 10:
        return int(value)
    return None


class BillingService:
    def __init__(
        self,
        store: EventStore,
        credits: CreditService,
        payments: Payments,
        clock: Clock | None = None,
        *,
        public_url: str = "http://127.0.0.1:8000",
        checkout_return_url: str = DEFAULT_RETURN_URL,
    ) -> None:
        self.store = store
        self.credits = credits
        self.payments = payments
        self.clock = clock or SystemClock()
        self.public_url = public_url.rstrip("/")
        self.checkout_return_url = checkout_return_url

    @property
    def provider(self) -> str:
        return self.payments.provider

    # -- profile ---------------------------------------------------------------------------

    def profile(self, account_id: UUID) -> BillingProfile | None:
        return self.store.find(billing_profile_id(account_id), BillingProfile)

    def _profile_or_new(self, account_id: UUID) -> BillingProfile:
        found = self.profile(account_id)
        return found if found is not None else BillingProfile(account_id=account_id)

    def _account(self, account_id: UUID) -> Account | None:
        return self.store.find(account_id, Account)

    # -- checkout -------------------------------------------------------------------------

    def create_checkout(
        self,
        account_id: UUID,
        *,
        credits: object = None,
        package_id: str | None = None,
        ui_mode: str = "embedded",
        save_payment_method: bool = False,
        success_path: str | None = None,
        provenance: str = "MCP",
        source: str | None = None,
    ) -> CheckoutCreated:
        q = quote(credits, package_id)
        if ui_mode not in ("hosted", "embedded"):
            raise ValidationFailed(
                "uiMode must be 'hosted' or 'embedded'.", code="invalid_ui_mode", field="uiMode"
            )
        if not isinstance(save_payment_method, bool):
            raise ValidationFailed(
                "savePaymentMethod must be a boolean.",
                code="invalid_field",
                field="savePaymentMethod",
            )
        success_url = resolve_success_url(
            success_path, default=self.checkout_return_url, public_url=self.public_url
        )
        cancel_url = success_url.replace(CHECKOUT_SESSION_PLACEHOLDER, "").rstrip("?&=")
        cancel_url = cancel_url.removesuffix("session_id").rstrip("?&")
        cancel_url += ("&" if "?" in cancel_url else "?") + urlencode({"canceled": "1"})
        account = self._account(account_id)
        if account is None:
            raise ValidationFailed("Account not found.", code="account_not_found")
        profile = self.profile(account_id)
        src = source or ("aimd" if provenance == "AIMD" else "mcp")
        metadata = {
            "user_id": str(account_id),
            "credits": str(q.credits),
            "source": src,
            "provenance": provenance,
            "package_id": q.package_id or "",
            "save_payment_method": "true" if save_payment_method else "false",
        }
        request = CheckoutRequest(
            account_id=str(account_id),
            customer_id=profile.customer_id if profile is not None else "",
            email=account.email,
            credits=q.credits,
            amount_cents=q.amount_cents,
            currency=CURRENCY,
            product_name=f"{q.credits} Backline credits",
            ui_mode="hosted" if ui_mode == "hosted" else "embedded",
            success_url=success_url,
            cancel_url=cancel_url,
            save_payment_method=save_payment_method,
            metadata=metadata,
            idempotency_key=f"checkout-{uuid4()}",
        )
        session = self.payments.create_checkout_session(request)
        log.info(
            "checkout_session_created",
            account_id=str(account_id),
            session_id=session.id,
            credits=q.credits,
            amount=q.amount_cents,
            provider=session.provider,
        )
        return CheckoutCreated(session=session, quote=q)

    # -- webhooks ---------------------------------------------------------------------------

    def handle_webhook(self, payload: bytes, signature: str) -> WebhookOutcome:
        """Verify (raises ``InvalidWebhook``) and apply one Stripe event."""
        evt = self.payments.verify_webhook(payload, signature)
        return self.apply_event(evt)

    def apply_event(self, evt: VerifiedEvent) -> WebhookOutcome:
        handler = {
            "checkout.session.completed": self._checkout_completed,
            "checkout.session.async_payment_succeeded": self._checkout_completed,
            "payment_intent.succeeded": self._payment_intent_succeeded,
            "charge.refunded": self._charge_refunded,
            "charge.dispute.created": self._dispute_created,
            "charge.dispute.closed": self._dispute_closed,
            "charge.dispute.funds_reinstated": self._dispute_closed,
        }.get(evt.type)
        outcome = WebhookOutcome(evt.id, evt.type, "ignored") if handler is None else handler(evt)
        log.info("stripe_event", event_id=evt.id, type=evt.type, outcome=outcome.outcome)
        return outcome

    def _checkout_completed(self, evt: VerifiedEvent) -> WebhookOutcome:
        obj = evt.object
        session_id = _str(obj.get("id"))
        if obj.get("payment_status") not in ("paid", "no_payment_required") or not session_id:
            return WebhookOutcome(evt.id, evt.type, "awaiting_payment")
        metadata = obj.get("metadata") or {}
        try:
            account_id = UUID(_str(metadata.get("user_id")))
        except ValueError:
            return WebhookOutcome(evt.id, evt.type, "ignored_no_user")
        if self._account(account_id) is None:
            log.warning("stripe_event_unknown_user", event_id=evt.id, user_id=str(account_id))
            return WebhookOutcome(evt.id, evt.type, "ignored_unknown_user")
        credits = _int(metadata.get("credits"))
        if credits is None or not 1 <= credits <= MAX_TRANSACTION_CREDITS:
            log.error("stripe_event_bad_credits", event_id=evt.id, session_id=session_id)
            return WebhookOutcome(evt.id, evt.type, "ignored_bad_metadata")
        amount_total = _int(obj.get("amount_total")) or 0
        package_id = _str(metadata.get("package_id")) or None
        try:
            expected = quote(None if package_id else credits, package_id).amount_cents
        except ValidationFailed:
            expected = credits * 100
        if amount_total < expected:
            log.error(
                "stripe_event_amount_mismatch",
                event_id=evt.id,
                session_id=session_id,
                amount_total=amount_total,
                expected=expected,
            )
            return WebhookOutcome(evt.id, evt.type, "ignored_amount_mismatch")
        payment_ref = _id_of(obj.get("payment_intent")) or session_id
        customer_id = _id_of(obj.get("customer"))
        card: CardDetails | None = None
        if metadata.get("save_payment_method") == "true" and payment_ref.startswith("pi_"):
            try:
                card = self.payments.card_of_payment(payment_ref)
            except PaymentProviderUnavailable:
                log.warning("saved_card_lookup_failed", payment_intent=payment_ref)
        ref = f"checkout:{session_id}"
        details = {
            "stripe_event": evt.id,
            "session_id": session_id,
            "source": _str(metadata.get("source")),
            "package_id": package_id or "",
        }

        def attempt() -> int:
            ledger = self.credits.load_ledger(account_id)
            applied = ledger.purchase(
                credits, ref, payment_ref=payment_ref, amount_paid=amount_total, details=details
            )
            profile = self._profile_or_new(account_id)
            before = len(profile.pending_events)
            if customer_id:
                profile.link_customer(customer_id)
            if card is not None:
                profile.link_customer(card.customer_id)
                profile.save_card(
                    SavedCard(
                        card.payment_method_id,
                        card.brand,
                        card.last4,
                        card.exp_month,
                        card.exp_year,
                    )
                )
            changed = len(profile.pending_events) > before
            index = self.credits.payment_index(payment_ref, account_id) if applied else None
            if not applied and not changed:
                return -1
            return self.store.save_all(
                ledger if applied else None, profile if changed else None, index
            )

        position = self.credits.retry(account_id, attempt)
        if position < 0:
            return WebhookOutcome(evt.id, evt.type, "duplicate")
        return WebhookOutcome(evt.id, evt.type, "granted", position)

    def _payment_intent_succeeded(self, evt: VerifiedEvent) -> WebhookOutcome:
        obj = evt.object
        metadata = obj.get("metadata") or {}
        if metadata.get("save_payment_method") == "true":
            return self._save_card_of_intent(evt)
        if metadata.get("source") != "autoreload" or not metadata.get("attempt_id"):
            return WebhookOutcome(evt.id, evt.type, "ignored")
        try:
            account_id = UUID(_str(metadata.get("user_id")))
        except ValueError:
            return WebhookOutcome(evt.id, evt.type, "ignored_no_user")
        result = ChargeResult(status="succeeded", payment_intent_id=_str(obj.get("id")))
        position = self._finish_reload(account_id, _str(metadata["attempt_id"]), result)
        return WebhookOutcome(
            evt.id, evt.type, "granted" if position > 0 else "duplicate", max(position, 0)
        )

    def _save_card_of_intent(self, evt: VerifiedEvent) -> WebhookOutcome:
        """A checkout payment that asked to keep its card: record the card (a second
        chance when the lookup during ``checkout.session.completed`` failed)."""
        obj = evt.object
        metadata = obj.get("metadata") or {}
        try:
            account_id = UUID(_str(metadata.get("user_id")))
        except ValueError:
            return WebhookOutcome(evt.id, evt.type, "ignored_no_user")
        pi = _str(obj.get("id"))
        if self._account(account_id) is None or not pi:
            return WebhookOutcome(evt.id, evt.type, "ignored_unknown_user")
        card = self.payments.card_of_payment(pi)  # unavailable -> 503, Stripe redelivers
        if card is None:
            return WebhookOutcome(evt.id, evt.type, "ignored")

        def attempt() -> int:
            profile = self._profile_or_new(account_id)
            before = len(profile.pending_events)
            profile.link_customer(card.customer_id)
            profile.save_card(
                SavedCard(
                    card.payment_method_id, card.brand, card.last4, card.exp_month, card.exp_year
                )
            )
            if len(profile.pending_events) == before:
                return -1
            return self.store.save_all(profile)

        position = retrying(attempt)
        if position < 0:
            return WebhookOutcome(evt.id, evt.type, "duplicate")
        return WebhookOutcome(evt.id, evt.type, "card_saved", position)

    def _reverse_payment(
        self, evt: VerifiedEvent, payment_ref: str, fraction: tuple[int, int] | None
    ) -> WebhookOutcome:
        if not payment_ref:
            return WebhookOutcome(evt.id, evt.type, "ignored")
        account_id = self.credits.account_of_payment(payment_ref)
        ledger = self.credits.load_ledger(account_id) if account_id is not None else None
        purchase = ledger.purchase_of(payment_ref) if ledger is not None else None
        if account_id is None or purchase is None:
            # Probably delivered before the checkout event: ask Stripe to redeliver (it
            # retries with backoff). A payment still unknown after an hour is not ours
            # (another product on the Stripe account): acknowledge and ignore it.
            created = _int(evt.raw.get("created"))
            age = self.clock.now().timestamp() - created if created else 0
            if age > UNKNOWN_PAYMENT_GRACE_SECONDS:
                log.warning("stripe_event_unknown_payment", event_id=evt.id, payment=payment_ref)
                return WebhookOutcome(evt.id, evt.type, "ignored_unknown_payment")
            raise PaymentNotRecorded(
                "This payment has not been recorded yet; deliver the event again later.",
                payment=payment_ref,
            )
        credits = purchase[0]
        if fraction is None:
            target = credits
        else:
            refunded, total = fraction
            target = credits if total <= 0 or refunded >= total else credits * refunded // total
        result = self.credits.reverse(
            account_id,
            payment_ref,
            target_total=target,
            ref=f"reversal:{payment_ref}:{target}",
            details={"stripe_event": evt.id, "reason": evt.type},
        )
        return WebhookOutcome(
            evt.id, evt.type, "reversed" if result.applied else "duplicate", result.position
        )

    def _charge_refunded(self, evt: VerifiedEvent) -> WebhookOutcome:
        obj = evt.object
        payment_ref = _id_of(obj.get("payment_intent"))
        total = _int(obj.get("amount_captured")) or _int(obj.get("amount")) or 0
        refunded = _int(obj.get("amount_refunded")) or 0
        if obj.get("refunded") is True:
            refunded = total
        return self._reverse_payment(evt, payment_ref, (refunded, total))

    def _dispute_created(self, evt: VerifiedEvent) -> WebhookOutcome:
        return self._reverse_payment(evt, _id_of(evt.object.get("payment_intent")), None)

    def _dispute_closed(self, evt: VerifiedEvent) -> WebhookOutcome:
        """A dispute the merchant won gives the reversed credits back (once per dispute)."""
        obj = evt.object
        won = obj.get("status") == "won" or evt.type == "charge.dispute.funds_reinstated"
        payment_ref = _id_of(obj.get("payment_intent"))
        dispute_id = _str(obj.get("id"))
        if not won or not payment_ref or not dispute_id:
            return WebhookOutcome(evt.id, evt.type, "ignored")
        account_id = self.credits.account_of_payment(payment_ref)
        if account_id is None:
            return WebhookOutcome(evt.id, evt.type, "ignored_unknown_payment")
        result = self.credits.reinstate(
            account_id,
            payment_ref,
            ref=f"reinstatement:{dispute_id}",
            details={"stripe_event": evt.id, "reason": evt.type},
        )
        return WebhookOutcome(
            evt.id, evt.type, "reinstated" if result.applied else "duplicate", result.position
        )

    # -- auto-reload ----------------------------------------------------------------------

    def set_autoreload(
        self,
        account_id: UUID,
        *,
        enabled: bool | None = None,
        package_id: str | None = None,
        quantity: object = None,
        threshold: object = None,
        payment_method_id: str | None = None,
    ) -> BillingProfile:
        if self._account(account_id) is None:
            raise ValidationFailed("Account not found.", code="account_not_found")

        def attempt() -> BillingProfile:
            profile = self._profile_or_new(account_id)
            profile.configure(
                enabled=enabled,
                package_id=package_id,
                quantity=quantity,
                threshold=threshold,
                payment_method_id=payment_method_id,
            )
            self.store.save_all(profile)
            return profile

        return retrying(attempt)

    def maybe_reload(self, ledger: UUID, trigger: str, *, need: int = 0) -> str:
        """Charge the saved card once if the balance is at/below the threshold (or below
        ``need``: a command that is short of credits, e.g. a release submission).

        The process manager calls it for each balance-lowering event; ``trigger`` names
        the cause. Returns ``not_enabled``, ``not_needed``, ``succeeded``, ``declined``,
        ``authentication_required`` or ``payment_provider_unavailable``.
        """
        profile_id = billing_profile_id_for_ledger(ledger)
        profile = self.store.find(profile_id, BillingProfile)
        if profile is None or not profile.enabled or profile.suspended:
            return "not_enabled"
        account_id = profile.account_id
        now = self.clock.now()

        def begin() -> tuple[BillingProfile, Any] | None:
            p = self.store.find(profile_id, BillingProfile)
            if p is None:
                return None
            found = self.credits.ledger_by_id(ledger)
            balance = found.balance if found is not None else 0
            if not p.wants_reload(balance, now, need):
                return None
            stale = p.attempt
            # Deterministic per trigger *and* ledger state: the same event seen twice
            # maps to one attempt; a later shortfall with the same text is a new one.
            version = found.version if found is not None else 0
            fresh = uuid5(ledger, f"{trigger}@{version}").hex
            attempt_id = stale.attempt_id if stale is not None else fresh
            attempt = p.begin_reload(attempt_id, trigger, now)
            self.store.save_all(p)
            return p, attempt

        started = retrying(begin)
        if started is None:
            return "not_needed"
        p, attempt = started
        charge = OffSessionCharge(
            customer_id=p.customer_id,
            payment_method_id=attempt.payment_method_id,
            amount_cents=attempt.amount_cents,
            currency=CURRENCY,
            description=f"Backline auto-reload: {attempt.credits} credits",
            metadata={
                "user_id": str(account_id),
                "credits": str(attempt.credits),
                "source": "autoreload",
                "attempt_id": attempt.attempt_id,
            },
            idempotency_key=f"autoreload-{attempt.attempt_id}",
        )
        try:
            result = self.payments.charge_off_session(charge)
        except PaymentProviderUnavailable as e:
            result = ChargeResult(status="declined", code=PROVIDER_ERROR, message=e.message)
        self._finish_reload(account_id, attempt.attempt_id, result)
        if result.code == PROVIDER_ERROR:
            return PROVIDER_ERROR
        log.info(
            "autoreload_charged",
            account_id=str(account_id),
            attempt_id=attempt.attempt_id,
            status=result.status,
            payment_intent=result.payment_intent_id,
        )
        return result.status

    def _finish_reload(self, account_id: UUID, attempt_id: str, result: ChargeResult) -> int:
        """Record an attempt's outcome once; on success grant the credits with it."""
        now = self.clock.now()
        if result.status == "processing":
            return 0  # payment_intent.succeeded will finish it

        def attempt() -> int:
            profile = self.profile(account_id)
            if profile is None or profile.attempt is None:
                return -1
            if profile.attempt.attempt_id != attempt_id:
                return -1
            pending = profile.attempt
            if result.status == SUCCEEDED:
                ledger = self.credits.load_ledger(account_id)
                payment_ref = result.payment_intent_id or f"autoreload:{attempt_id}"
                applied = ledger.purchase(
                    pending.credits,
                    f"autoreload:{attempt_id}",
                    payment_ref=payment_ref,
                    amount_paid=pending.amount_cents,
                    details={"source": "autoreload", "attempt_id": attempt_id},
                )
                profile.finish_reload(
                    attempt_id, SUCCEEDED, now, payment_intent_id=result.payment_intent_id
                )
                index = self.credits.payment_index(payment_ref, account_id) if applied else None
                return self.store.save_all(profile, ledger if applied else None, index)
            status = result.code if result.code == PROVIDER_ERROR else result.status
            if status not in (DECLINED, AUTHENTICATION_REQUIRED, PROVIDER_ERROR):
                status = DECLINED
            profile.finish_reload(
                attempt_id,
                status,
                now,
                payment_intent_id=result.payment_intent_id,
                code=result.code,
                message=result.message,
            )
            self.store.save_all(profile)
            return 0

        return self.credits.retry(account_id, attempt)


def autoreload_view(profile: BillingProfile | None) -> dict[str, Any]:
    """The shape ``get_autoreload`` / ``GET /v1/me/autoreload`` answer with."""
    if profile is None:
        return {
            "enabled": False,
            "packageId": None,
            "quantity": None,
            "credits": None,
            "amount": None,
            "currency": CURRENCY,
            "threshold": 0,
            "paymentMethod": None,
            "savedCards": [],
            "suspended": False,
            "lastStatus": None,
        }
    q = None
    if profile.package_id is not None or profile.quantity is not None:
        q = profile.reload_quote()
    card = profile.card(profile.payment_method_id) if profile.payment_method_id else None
    card = card or profile.latest_card

    def card_view(c: SavedCard) -> dict[str, Any]:
        return {
            "id": c.payment_method_id,
            "brand": c.brand,
            "last4": c.last4,
            "expMonth": c.exp_month,
            "expYear": c.exp_year,
        }

    return {
        "enabled": profile.enabled,
        "packageId": profile.package_id,
        "quantity": profile.quantity,
        "credits": q.credits if q else None,
        "amount": q.amount_cents if q else None,
        "currency": CURRENCY,
        "threshold": profile.threshold,
        "paymentMethod": card_view(card) if card is not None else None,
        "savedCards": [card_view(c) for c in reversed(profile.cards)],
        "suspended": profile.suspended,
        "lastStatus": profile.last_status,
    }


__all__ = ["MAX_RELOAD_THRESHOLD", "BillingService", "autoreload_view"]
