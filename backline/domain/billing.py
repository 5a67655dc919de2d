"""BillingProfile: an account's payment customer, saved cards and auto-reload.

One per account, id ``uuid5(BILLING_NAMESPACE, str(ledger_id))`` so that a process
manager that only sees ledger events finds it without another lookup.

Auto-reload is a small state machine guarded by this aggregate's version:
``idle`` → ``begin_reload`` (records the attempt *before* any card is charged) →
``succeeded`` | ``declined`` | ``authentication_required`` | ``error``. Two triggers
racing both try to begin; the store lets one write, the other reloads, sees the attempt
in flight and stops — one charge. A failure suspends auto-reload until the user sets it
again (no retry loop against a declining card).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.credits import ledger_id
from backline.domain.errors import ValidationFailed
from backline.domain.pricing import (
    CREDIT_PRICE_CENTS,
    DEFAULT_RELOAD_THRESHOLD,
    MAX_CUSTOM_CREDITS,
    MAX_RELOAD_THRESHOLD,
    MIN_CUSTOM_CREDITS,
    MIN_RELOAD_THRESHOLD,
    Quote,
    bundle,
    check_whole,
)

BILLING_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/billing-profile")
MAX_SAVED_CARDS = 20
STALE_ATTEMPT = timedelta(minutes=10)

SUCCEEDED = "succeeded"
DECLINED = "declined"
AUTHENTICATION_REQUIRED = "authentication_required"
PROVIDER_ERROR = "payment_provider_unavailable"
PENDING = "pending"


def billing_profile_id_for_ledger(ledger: UUID) -> UUID:
    return uuid5(BILLING_NAMESPACE, str(ledger))


def billing_profile_id(account_id: UUID) -> UUID:
    return billing_profile_id_for_ledger(ledger_id(account_id))


@dataclass(frozen=True)
class SavedCard:
    payment_method_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class ReloadAttempt:
    attempt_id: str
    credits: int
    amount_cents: int
    payment_method_id: str
    trigger: str
    started_at: datetime


def reload_quote(package_id: str | None, quantity: object) -> Quote:
    if package_id is not None:
        b = bundle(package_id)
        return Quote(credits=b.credits, amount_cents=b.price_cents, package_id=b.package_id)
    n = check_whole(
        quantity, "quantity", MIN_CUSTOM_CREDITS, MAX_CUSTOM_CREDITS, code="invalid_quantity"
    )
    return Quote(credits=n, amount_cents=n * CREDIT_PRICE_CENTS)


class BillingProfile(Aggregate):
    TOPIC = "backline.BillingProfile"

    class Created(Aggregate.Created):
        TOPIC = "backline.BillingProfile.Created"

    class Event(Aggregate.Event):
        pass

    class Opened(Created):
        TOPIC = "backline.BillingProfile.Opened"
        account_id: UUID

    @staticmethod
    def create_id(account_id: UUID) -> UUID:
        return billing_profile_id(account_id)

    @event(Opened)
    def __init__(self, account_id: UUID) -> None:
        self.account_id = account_id
        self.customer_id = ""
        self.cards: list[SavedCard] = []
        self.enabled = False
        self.package_id: str | None = None
        self.quantity: int | None = None
        self.threshold = DEFAULT_RELOAD_THRESHOLD
        self.payment_method_id = ""
        self.suspended = False
        self.attempt: ReloadAttempt | None = None
        self.last_status: dict[str, str] | None = None

    # -- customer and cards -----------------------------------------------------------

    class CustomerLinked(Event):
        TOPIC = "backline.BillingProfile.CustomerLinked"
        customer_id: str

    @event(CustomerLinked)
    def _customer_linked(self, customer_id: str) -> None:
        self.customer_id = customer_id

    def link_customer(self, customer_id: str) -> None:
        if customer_id and customer_id != self.customer_id:
            self._customer_linked(customer_id=customer_id)

    class CardSaved(Event):
        TOPIC = "backline.BillingProfile.CardSaved"
        payment_method_id: str
        brand: str
        last4: str
        exp_month: int
        exp_year: int

    @event(CardSaved)
    def _card_saved(
        self, payment_method_id: str, brand: str, last4: str, exp_month: int, exp_year: int
    ) -> None:
        card = SavedCard(payment_method_id, brand, last4, exp_month, exp_year)
        self.cards = [c for c in self.cards if c.payment_method_id != payment_method_id]
        self.cards.append(card)
        self.cards = self.cards[-MAX_SAVED_CARDS:]

    def save_card(self, card: SavedCard) -> bool:
        if any(c == card for c in self.cards):
            return False
        self._card_saved(
            payment_method_id=card.payment_method_id,
            brand=card.brand,
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
        )
        return True

    def card(self, payment_method_id: str) -> SavedCard | None:
        for c in self.cards:
            if c.payment_method_id == payment_method_id:
                return c
        return None

    @property
    def latest_card(self) -> SavedCard | None:
        return self.cards[-1] if self.cards else None

    # -- configuration ------------------------------------------------------------------

    class AutoReloadConfigured(Event):
        TOPIC = "backline.BillingProfile.AutoReloadConfigured"
        enabled: bool
        package_id: str | None
        quantity: int | None
        threshold: int
        payment_method_id: str

    @event(AutoReloadConfigured)
    def _configured(
        self,
        enabled: bool,
        package_id: str | None,
        quantity: int | None,
        threshold: int,
        payment_method_id: str,
    ) -> None:
        self.enabled = enabled
        self.package_id = package_id
        self.quantity = quantity
        self.threshold = threshold
        self.payment_method_id = payment_method_id
        self.suspended = False

    def configure(
        self,
        *,
        enabled: bool | None = None,
        package_id: str | None = None,
        quantity: object = None,
        threshold: object = None,
        payment_method_id: str | None = None,
    ) -> None:
        """Apply a ``set_autoreload`` request (``None`` = keep the current value)."""
        new_enabled = self.enabled if enabled is None else enabled
        if not isinstance(new_enabled, bool):
            raise ValidationFailed(
                "enabled must be a boolean.", code="invalid_field", field="enabled"
            )
        new_package, new_quantity = self.package_id, self.quantity
        if package_id is not None and quantity is not None:
            raise ValidationFailed(
                "Pass either packageId or quantity, not both.",
                code="invalid_quantity",
                field="quantity",
            )
        if package_id is not None:
            new_package, new_quantity = bundle(package_id).package_id, None
        elif quantity is not None:
            reload_quote(None, quantity)
            new_package, new_quantity = None, int(quantity)  # type: ignore[call-overload]
        new_threshold = self.threshold
        if threshold is not None:
            new_threshold = check_whole(
                threshold,
                "threshold",
                MIN_RELOAD_THRESHOLD,
                MAX_RELOAD_THRESHOLD,
                code="invalid_threshold",
            )
        new_pm = self.payment_method_id
        if payment_method_id is not None:
            if self.card(payment_method_id) is None:
                raise ValidationFailed(
                    "paymentMethodId is not one of your saved cards.",
                    code="unknown_payment_method",
                    field="paymentMethodId",
                )
            new_pm = payment_method_id
        if new_enabled:
            if new_package is None and new_quantity is None:
                raise ValidationFailed(
                    "Choose the reload amount with packageId or quantity.",
                    code="invalid_quantity",
                    field="packageId",
                )
            if not new_pm or self.card(new_pm) is None:
                latest = self.latest_card
                if latest is None:
                    raise ValidationFailed(
                        "Auto-reload needs a saved card: buy credits once with "
                        "savePaymentMethod: true first.",
                        code="payment_method_required",
                        field="paymentMethodId",
                    )
                new_pm = latest.payment_method_id
        self._configured(
            enabled=new_enabled,
            package_id=new_package,
            quantity=new_quantity,
            threshold=new_threshold,
            payment_method_id=new_pm,
        )

    def reload_quote(self) -> Quote:
        return reload_quote(self.package_id, self.quantity)

    # -- reload attempts ------------------------------------------------------------------

    def wants_reload(self, balance: int, now: datetime, need: int = 0) -> bool:
        """Should a reload start now? Enabled, not suspended, nothing in flight, and the
        balance at or below the threshold (or below ``need``, a command's shortfall)."""
        if not self.enabled or self.suspended or not self.payment_method_id:
            return False
        if self.attempt is not None and now - self.attempt.started_at < STALE_ATTEMPT:
            return False
        return balance <= self.threshold or balance < need

    class ReloadStarted(Event):
        TOPIC = "backline.BillingProfile.ReloadStarted"
        attempt_id: str
        credits: int
        amount_cents: int
        payment_method_id: str
        trigger: str
        started_at: datetime

    @event(ReloadStarted)
    def _reload_started(
        self,
        attempt_id: str,
        credits: int,
        amount_cents: int,
        payment_method_id: str,
        trigger: str,
        started_at: datetime,
    ) -> None:
        self.attempt = ReloadAttempt(
            attempt_id, credits, amount_cents, payment_method_id, trigger, started_at
        )
        self.last_status = {
            "status": PENDING,
            "at": started_at.isoformat(),
            "attemptId": attempt_id,
        }

    def begin_reload(self, attempt_id: str, trigger: str, now: datetime) -> ReloadAttempt:
        q = self.reload_quote()
        self._reload_started(
            attempt_id=attempt_id,
            credits=q.credits,
            amount_cents=q.amount_cents,
            payment_method_id=self.payment_method_id,
            trigger=trigger,
            started_at=now,
        )
        assert self.attempt is not None
        return self.attempt

    class ReloadFinished(Event):
        TOPIC = "backline.BillingProfile.ReloadFinished"
        attempt_id: str
        status: str
        payment_intent_id: str
        code: str
        message: str
        at: datetime

    @event(ReloadFinished)
    def _reload_finished(
        self,
        attempt_id: str,
        status: str,
        payment_intent_id: str,
        code: str,
        message: str,
        at: datetime,
    ) -> None:
        if self.attempt is not None and self.attempt.attempt_id == attempt_id:
            self.attempt = None
        if status != SUCCEEDED:
            self.suspended = True
        self.last_status = {
            "status": status,
            "at": at.isoformat(),
            "attemptId": attempt_id,
            "paymentIntentId": payment_intent_id,
            "code": code,
            "message": message,
        }

    def finish_reload(
        self,
        attempt_id: str,
        status: str,
        now: datetime,
        *,
        payment_intent_id: str = "",
        code: str = "",
        message: str = "",
    ) -> bool:
        """Record the outcome of an attempt once (a late duplicate writes nothing)."""
        if self.attempt is None or self.attempt.attempt_id != attempt_id:
            return False
        self._reload_finished(
            attempt_id=attempt_id,
            status=status,
            payment_intent_id=payment_intent_id,
            code=code,
            message=message[:300],
            at=now,
        )
        return True


PAYMENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/payment")


def payment_index_id(payment_ref: str) -> UUID:
    return uuid5(PAYMENT_NAMESPACE, payment_ref)


class PaymentIndex(Aggregate):
    """Which account a card payment (PaymentIntent id) bought credits for.

    Saved with the purchase; refunds and disputes arrive naming only the payment.
    """

    TOPIC = "backline.PaymentIndex"

    class Created(Aggregate.Created):
        TOPIC = "backline.PaymentIndex.Created"

    class Recorded(Created):
        TOPIC = "backline.PaymentIndex.Recorded"
        payment_ref: str
        account_id: UUID

    @staticmethod
    def create_id(payment_ref: str) -> UUID:
        return payment_index_id(payment_ref)

    @event(Recorded)
    def __init__(self, payment_ref: str, account_id: UUID) -> None:
        self.payment_ref = payment_ref
        self.account_id = account_id
