"""The real Stripe adapter, through the real ``stripe`` SDK, against local peers:
localstripe (customers, payment methods, off-session PaymentIntents, declines) and a
named fake of the Checkout Sessions API (which localstripe does not have)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import msgspec
import pytest
import stripe

from backline.adapters.stripe_payments import StripePayments
from backline.application.payments import (
    CheckoutRequest,
    OffSessionCharge,
    PaymentProviderUnavailable,
)
from backline.infra.container import Container
from tests.conftest import free_port, make_settings
from tests.integration.stripe_peers import FakeCheckoutSessions, run_localstripe

KEY = "sk_test_local"
WHSEC = "whsec_test_secret"


@pytest.fixture(scope="module")
def localstripe() -> Iterator[str]:
    with run_localstripe() as base:
        yield base


def sdk(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": base}, max_network_retries=0)


def saved_card(base: str, number: str) -> tuple[str, str]:
    """A customer with an attached card, created through the SDK: (customer, pm)."""
    client = sdk(base)
    customer = client.v1.customers.create(params={"email": "ada@example.com"})
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    return customer.id, pm.id


def charge(customer: str, pm: str, key: str = "k1") -> OffSessionCharge:
    return OffSessionCharge(
        customer_id=customer,
        payment_method_id=pm,
        amount_cents=2375,
        currency="usd",
        description="Backline auto-reload: 25 credits",
        metadata={"user_id": "u1", "source": "autoreload", "attempt_id": key},
        idempotency_key=key,
    )


def test_off_session_charge_succeeds_and_reads_the_card(localstripe: str) -> None:
    adapter = StripePayments(KEY, api_base=localstripe)
    customer, pm = saved_card(localstripe, "4242424242424242")
    result = adapter.charge_off_session(charge(customer, pm))
    assert result.status == "succeeded"
    assert result.payment_intent_id.startswith("pi_")
    card = adapter.card_of_payment(result.payment_intent_id)
    assert card is not None
    assert (card.payment_method_id, card.customer_id, card.last4) == (pm, customer, "4242")
    assert adapter.card_of_payment("pi_doesnotexist") is None


def test_declined_and_authentication_required(localstripe: str) -> None:
    adapter = StripePayments(KEY, api_base=localstripe)
    customer, pm = saved_card(localstripe, "4000000000000341")  # attaches, charge declines
    declined = adapter.charge_off_session(charge(customer, pm, "k2"))
    assert (declined.status, declined.code) == ("declined", "card_declined")
    customer, pm = saved_card(localstripe, "4000002760003184")  # needs 3-D Secure
    auth = adapter.charge_off_session(charge(customer, pm, "k3"))
    assert auth.status == "authentication_required"
    assert auth.payment_intent_id.startswith("pi_")


def test_a_card_declined_at_attach_is_refused_by_stripe(localstripe: str) -> None:
    with pytest.raises(stripe.CardError):
        saved_card(localstripe, "4000000000000002")


def test_unreachable_stripe_is_a_clear_error() -> None:
    adapter = StripePayments(KEY, api_base=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(PaymentProviderUnavailable) as e:
        adapter.charge_off_session(charge("cus_x", "pm_x"))
    assert e.value.code == "payment_provider_unavailable"


def checkout_request(ui_mode: str, save: bool, customer: str = "") -> CheckoutRequest:
    return CheckoutRequest(
        account_id="0b9a7c8e-0000-4000-8000-000000000001",
        customer_id=customer,
        email="ada@example.com",
        credits=5,
        amount_cents=500,
        currency="usd",
        product_name="5 Backline credits",
        ui_mode=ui_mode,  # type: ignore[arg-type]
        success_url="https://app.example/return?session_id={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example/return?canceled=1",
        save_payment_method=save,
        metadata={"user_id": "u1", "credits": "5", "source": "aimd"},
        idempotency_key="checkout-1",
    )


def test_checkout_sessions_against_the_fake() -> None:
    with FakeCheckoutSessions() as fake:
        adapter = StripePayments(KEY, publishable_key="pk_test_local", api_base=fake.base)
        embedded = adapter.create_checkout_session(checkout_request("embedded", True))
        assert embedded.client_secret is not None
        assert embedded.client_secret.startswith(embedded.id)
        assert embedded.url is None
        assert embedded.publishable_key == "pk_test_local"
        assert (embedded.amount_total, embedded.currency) == (500, "usd")
        sent = fake.requests[-1]["form"]
        assert sent["ui_mode"] == "embedded_page"
        assert sent["return_url"].endswith("session_id={CHECKOUT_SESSION_ID}")
        assert sent["metadata[user_id]"] == "u1"
        assert sent["metadata[source]"] == "aimd"
        assert sent["payment_intent_data[setup_future_usage]"] == "off_session"
        assert sent["payment_intent_data[metadata][credits]"] == "5"
        assert sent["customer_creation"] == "always"
        assert fake.requests[-1]["headers"]["Idempotency-Key"] == "checkout-1"

        hosted = adapter.create_checkout_session(checkout_request("hosted", False, "cus_1"))
        assert hosted.url is not None
        assert hosted.url.startswith("https://checkout.stripe.com/")
        assert hosted.client_secret is None
        sent = fake.requests[-1]["form"]
        assert sent["ui_mode"] == "hosted_page"
        assert sent["success_url"].startswith("https://app.example/return")
        assert sent["customer"] == "cus_1"
        assert "payment_intent_data[setup_future_usage]" not in sent


# -- the whole auto-reload path with the real adapter -------------------------------------


def stripe_container(tmp_path: Path, db: str, base: str) -> Container:
    return Container.build(
        make_settings(
            db,
            tmp_path,
            BACKLINE_STRIPE_SECRET_KEY=KEY,
            BACKLINE_STRIPE_API_BASE=base,
            BACKLINE_STRIPE_WEBHOOK_SECRET=WHSEC,
            BACKLINE_STRIPE_PUBLISHABLE_KEY="pk_test_local",
        )
    )


def paid_checkout_event(account: UUID, pi: str, customer: str, credits: int) -> bytes:
    return msgspec.json.encode(
        {
            "id": f"evt_{pi}",
            "object": "event",
            "type": "checkout.session.completed",
            "data": {
                "object": {
                    "id": f"cs_test_{pi}",
                    "object": "checkout.session",
                    "payment_status": "paid",
                    "status": "complete",
                    "amount_total": credits * 100,
                    "currency": "usd",
                    "customer": customer,
                    "payment_intent": pi,
                    "metadata": {
                        "user_id": str(account),
                        "credits": str(credits),
                        "source": "mcp",
                        "save_payment_method": "true",
                    },
                }
            },
        }
    )


def payment_intents_of(base: str, customer: str) -> list[str]:
    listing = sdk(base).v1.payment_intents.list(params={"limit": 100})
    return [pi.id for pi in listing.data if pi.customer == customer]


def test_auto_reload_with_the_real_adapter_charges_once_even_racing(
    localstripe: str, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    first = stripe_container(tmp_path / "a", db, localstripe)
    second = stripe_container(tmp_path / "b", db, localstripe)
    try:
        account = first.accounts.register("ada@example.com", "correct horse battery staple")
        a = account.account_id
        customer, pm = saved_card(localstripe, "4242424242424242")
        # The first purchase, paid on-session, saving the card (what Checkout would do).
        pi = sdk(localstripe).v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "customer": customer,
                "payment_method": pm,
                "confirm": True,
            }
        )
        payload = paid_checkout_event(a, pi.id, customer, 10)
        sig = stripe.WebhookSignature.generate_signature_header(payload.decode(), WHSEC)
        assert first.billing.handle_webhook(payload, sig).outcome == "granted"
        profile = first.billing.profile(a)
        assert profile is not None
        assert profile.latest_card is not None
        assert profile.latest_card.payment_method_id == pm
        assert profile.customer_id == customer
        first.billing.set_autoreload(a, enabled=True, package_id="credits_25", threshold=0)
        before = payment_intents_of(localstripe, customer)

        first.credits.debit(a, 10, "release:r1")  # 10 -> 0
        # Two process managers (two "servers") see the same drop at the same time.
        barrier = threading.Barrier(2)

        def run(c: Container) -> None:
            barrier.wait()
            c.autoreload.catch_up()

        threads = [threading.Thread(target=run, args=(c,)) for c in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        new = [p for p in payment_intents_of(localstripe, customer) if p not in before]
        assert len(new) == 1, new
        assert first.credits.balance(a) == 25
        status = first.billing.profile(a).last_status  # type: ignore[union-attr]
        assert status is not None
        assert (status["status"], status["paymentIntentId"]) == ("succeeded", new[0])
    finally:
        first.close()
        second.close()


def test_unreachable_stripe_grants_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    c = stripe_container(tmp_path, db, f"http://127.0.0.1:{free_port()}")
    try:
        a = c.accounts.register("ada@example.com", "correct horse battery staple").account_id
        head = c.store.max_position()
        with pytest.raises(PaymentProviderUnavailable):
            c.billing.create_checkout(a, credits=5)
        assert c.store.max_position() == head
        # Auto-reload against an unreachable Stripe: recorded, suspended, nothing granted.
        from backline.domain.billing import SavedCard

        profile = c.billing._profile_or_new(a)
        profile.link_customer("cus_x")
        profile.save_card(SavedCard("pm_x", "visa", "4242", 12, 2031))
        c.store.save_all(profile)
        c.billing.set_autoreload(a, enabled=True, quantity=5, threshold=0)
        c.credits.grant(a, 1, "promo:1")
        c.credits.debit(a, 1, "release:r1")
        c.autoreload.catch_up()
        status = c.billing.profile(a).last_status  # type: ignore[union-attr]
        assert status is not None
        assert status["status"] == "payment_provider_unavailable"
        assert c.credits.balance(a) == 0
    finally:
        c.close()


def test_the_sandbox_is_refused_in_production() -> None:
    from backline.adapters.sandbox_payments import SandboxPayments

    class Memory:
        def __init__(self) -> None:
            self.data: dict[tuple[str, str], bytes] = {}

        def set(self, ns: str, key: str, value: bytes, expires_in: float | None) -> None:
            self.data[ns, key] = value

        def get(self, ns: str, key: str, renew_for: float | None = None) -> bytes | None:
            return self.data.get((ns, key))

    sandbox = SandboxPayments(Memory(), public_url="https://x", webhook_secret="w", production=True)
    with pytest.raises(PaymentProviderUnavailable):
        sandbox.create_checkout_session(checkout_request("hosted", False))
    with pytest.raises(PaymentProviderUnavailable):
        sandbox.charge_off_session(charge("cus_x", "pm_x"))
    with pytest.raises(PaymentProviderUnavailable):
        sandbox.session("cs_sandbox_x")
    dev = SandboxPayments(Memory(), public_url="https://x", webhook_secret="w")
    session = dev.create_checkout_session(checkout_request("hosted", False))
    assert session.provider == "sandbox"
    assert session.url == f"https://x/sandbox/checkout/{session.id}"
