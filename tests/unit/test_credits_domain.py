"""CreditLedger, pricing and BillingProfile rules, with no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from backline.adapters.msgspec_mapper import MsgspecMapper
from backline.application.billing import resolve_success_url, with_session_id
from backline.domain.billing import (
    DECLINED,
    SUCCEEDED,
    BillingProfile,
    SavedCard,
    billing_profile_id,
)
from backline.domain.credits import (
    CreditLedger,
    InsufficientCredits,
    ledger_id,
    replay_transactions,
)
from backline.domain.errors import Conflict, ValidationFailed
from backline.domain.pricing import BUNDLES, bundle, quote, release_cost

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


# -- pricing ------------------------------------------------------------------------------


def test_custom_credits_cost_one_dollar_each() -> None:
    q = quote(5)
    assert (q.credits, q.amount_cents, q.package_id, q.currency) == (5, 500, None, "usd")
    assert quote(1000).amount_cents == 100_000


@pytest.mark.parametrize("bad", [0, 1001, -1, 2.5, True, "5", None])
def test_bad_credit_amounts_are_refused(bad: object) -> None:
    with pytest.raises(ValidationFailed) as e:
        quote(bad)
    assert e.value.code == "invalid_credits"


def test_bundles_are_discounted_more_as_they_grow() -> None:
    assert next(b.package_id for b in BUNDLES) == "credits_10"
    assert BUNDLES[-1].package_id == "credits_500"
    per_credit = [b.price_cents / b.credits for b in BUNDLES]
    assert per_credit == sorted(per_credit, reverse=True)
    assert all(isinstance(b.price_cents, int) for b in BUNDLES)
    q = quote(package_id="credits_100")
    assert (q.credits, q.amount_cents, q.package_id) == (100, 8_500, "credits_100")
    assert bundle("credits_500").discount_percent == 25


def test_unknown_package_and_both_inputs_are_refused() -> None:
    with pytest.raises(ValidationFailed) as e:
        quote(package_id="credits_7")
    assert e.value.code == "unknown_package"
    with pytest.raises(ValidationFailed):
        quote(5, "credits_10")


def test_release_cost_is_the_same_on_every_surface() -> None:
    assert release_cost(3, 0) == 3
    assert release_cost(1, 2) == 5
    assert release_cost(1, 1, token_offset=True) == 4


# -- ledger --------------------------------------------------------------------------------


def funded(credits: int = 10) -> CreditLedger:
    ledger = CreditLedger(account_id=uuid4())
    ledger.purchase(credits, "checkout:cs_1", payment_ref="pi_1", amount_paid=credits * 100)
    return ledger


def test_ledger_id_is_deterministic_per_account() -> None:
    account = uuid4()
    assert CreditLedger(account_id=account).id == ledger_id(account)
    assert ledger_id(account) != ledger_id(uuid4())


def test_debit_never_goes_negative_and_names_needed_and_available() -> None:
    ledger = funded(3)
    with pytest.raises(InsufficientCredits) as e:
        ledger.debit(4, "release:r1")
    assert e.value.code == "insufficient_credits"
    assert e.value.details == {"needed": 4, "available": 3}
    assert ledger.balance == 3
    assert ledger.debit(3, "release:r1") is True
    assert ledger.balance == 0


def test_a_ref_is_applied_once() -> None:
    ledger = funded(10)
    assert ledger.debit(2, "release:r1") is True
    version = ledger.version
    assert ledger.debit(2, "release:r1") is False
    assert ledger.grant(5, "release:r1") is False
    assert ledger.version == version
    assert ledger.balance == 8
    # The same payment cannot buy credits twice under another ref.
    assert ledger.purchase(10, "checkout:other", payment_ref="pi_1", amount_paid=1000) is False


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1", 10**7])
def test_amounts_are_positive_integers(bad: object) -> None:
    ledger = funded(10)
    with pytest.raises(ValidationFailed):
        ledger.debit(bad, "release:x")  # type: ignore[arg-type]


def test_refund_returns_at_most_what_a_debit_took() -> None:
    ledger = funded(10)
    ledger.debit(3, "release:r1")
    assert ledger.refund(2, "refund:r1:a", of_ref="release:r1")
    with pytest.raises(Conflict) as e:
        ledger.refund(2, "refund:r1:b", of_ref="release:r1")
    assert e.value.code == "refund_exceeds_debit"
    with pytest.raises(ValidationFailed):
        ledger.refund(1, "refund:zz", of_ref="release:unknown")
    assert ledger.used_total == 1


def test_reversal_takes_back_credits_but_never_below_zero() -> None:
    ledger = funded(10)
    ledger.debit(7, "release:r1")
    assert ledger.reverse("pi_1", target_total=10, ref="reversal:pi_1:10") is True
    assert ledger.balance == 0
    events = ledger.collect_events()
    reversal = events[-1]
    assert (reversal.amount, reversal.shortfall, reversal.reversed_total) == (3, 7, 10)
    # Replayed refund webhook: target reached, nothing new.
    assert ledger.reverse("pi_1", target_total=10, ref="reversal:pi_1:10") is False


def test_a_won_dispute_gives_back_what_the_reversal_took() -> None:
    ledger = funded(10)
    ledger.debit(7, "release:r1")
    ledger.reverse("pi_1", target_total=10, ref="reversal:pi_1:10")  # takes 3, shortfall 7
    assert ledger.balance == 0
    assert ledger.reinstate("pi_1", ref="reinstatement:dp_1") is True
    assert ledger.balance == 3
    assert ledger.reinstate("pi_1", ref="reinstatement:dp_1") is False  # replayed
    assert ledger.reinstate("pi_1", ref="reinstatement:dp_2") is False  # nothing taken now
    # The purchase can be reversed again afterwards (a later refund).
    assert ledger.reverse("pi_1", target_total=10, ref="reversal:pi_1:10:again") is True
    assert ledger.balance == 0
    fold = replay_transactions(
        (type(e).TX_TYPE, e.originator_version, e.amount, e.balance_after, e.ref)
        for e in ledger.collect_events()
        if hasattr(e, "balance_after")
    )
    assert fold.problems == []
    assert fold.purchased_total == 10 - 3 + 3 - 3


def test_partial_then_full_reversal_converges() -> None:
    ledger = funded(10)
    assert ledger.reverse("pi_1", target_total=4, ref="reversal:pi_1:4")
    assert ledger.balance == 6
    assert ledger.reverse("pi_1", target_total=10, ref="reversal:pi_1:10")
    assert ledger.balance == 0
    assert ledger.reverse("pi_1", target_total=4, ref="reversal:pi_1:4") is False


def test_events_round_trip_through_the_store_mapper_and_replay_equal() -> None:
    ledger = funded(10)
    ledger.debit(2, "release:r1")
    ledger.refund(1, "refund:r1", of_ref="release:r1")
    ledger.grant(3, "promo:1")
    ledger.reverse("pi_1", target_total=5, ref="reversal:pi_1:5")
    mapper = MsgspecMapper()
    events = [mapper.to_domain_event(mapper.to_stored_event(e)) for e in ledger.collect_events()]
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert copy is not None
    assert (copy.balance, copy.refs, copy.purchases, copy.used_total) == (
        ledger.balance,
        ledger.refs,
        ledger.purchases,
        ledger.used_total,
    )
    fold = replay_transactions(
        (type(e).TX_TYPE, e.originator_version, e.amount, e.balance_after, e.ref)
        for e in events
        if hasattr(e, "balance_after")
    )
    assert fold.problems == []
    assert fold.balance == ledger.balance == 7


def test_the_audit_fold_catches_broken_arithmetic_and_duplicates() -> None:
    fold = replay_transactions(
        [
            ("purchase", 2, 10, 10, "a"),
            ("debit", 3, 4, 7, "b"),  # should be 6
            ("debit", 4, 1, 6, "b"),  # duplicate ref
            ("debit", 5, 9, -3, "c"),  # negative
        ]
    )
    assert len(fold.problems) == 3


# -- billing profile -------------------------------------------------------------------------


def card(pm: str = "pm_1") -> SavedCard:
    return SavedCard(pm, "visa", "4242", 12, 2030)


def test_enabling_auto_reload_needs_a_saved_card() -> None:
    account = uuid4()
    profile = BillingProfile(account_id=account)
    assert profile.id == billing_profile_id(account)
    with pytest.raises(ValidationFailed) as e:
        profile.configure(enabled=True, package_id="credits_100")
    assert e.value.code == "payment_method_required"
    profile.save_card(card())
    profile.configure(enabled=True, package_id="credits_100")
    assert profile.payment_method_id == "pm_1"  # most recent saved card reused
    assert profile.threshold == 0


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"threshold": -1}, "invalid_threshold"),
        ({"threshold": 1001}, "invalid_threshold"),
        ({"threshold": 1.5}, "invalid_threshold"),
        ({"quantity": 0}, "invalid_quantity"),
        ({"quantity": 1001}, "invalid_quantity"),
        ({"package_id": "credits_3"}, "unknown_package"),
        ({"payment_method_id": "pm_other"}, "unknown_payment_method"),
        ({"package_id": "credits_10", "quantity": 5}, "invalid_quantity"),
    ],
)
def test_auto_reload_settings_out_of_range(kwargs: dict[str, object], code: str) -> None:
    profile = BillingProfile(account_id=uuid4())
    profile.save_card(card())
    with pytest.raises(ValidationFailed) as e:
        profile.configure(enabled=True, **kwargs)  # type: ignore[arg-type]
    assert e.value.code == code


def test_one_attempt_at_a_time_and_a_decline_suspends() -> None:
    profile = BillingProfile(account_id=uuid4())
    profile.save_card(card())
    profile.configure(enabled=True, quantity=20, threshold=5)
    assert profile.wants_reload(5, NOW)
    assert not profile.wants_reload(6, NOW)
    attempt = profile.begin_reload("a1", "v7", NOW)
    assert (attempt.credits, attempt.amount_cents) == (20, 2000)
    assert not profile.wants_reload(0, NOW)  # in flight
    assert profile.wants_reload(0, NOW + timedelta(hours=1))  # stale: may resume
    assert profile.finish_reload("other", SUCCEEDED, NOW) is False
    assert profile.finish_reload("a1", DECLINED, NOW, code="card_declined")
    assert profile.suspended
    assert not profile.wants_reload(0, NOW)
    assert profile.last_status is not None
    assert profile.last_status["status"] == DECLINED
    profile.configure(enabled=True)  # setting it again lifts the suspension
    assert profile.wants_reload(0, NOW)


def test_success_urls() -> None:
    default = "https://app.aimusicdistro.com/api/once/checkout-return"
    assert resolve_success_url(None, default=default, public_url="http://x") == (
        default + "?session_id={CHECKOUT_SESSION_ID}"
    )
    assert resolve_success_url("/done?a=1", default=default, public_url="https://b.dev") == (
        "https://b.dev/done?a=1&session_id={CHECKOUT_SESSION_ID}"
    )
    assert with_session_id("https://a.dev/r?session_id={CHECKOUT_SESSION_ID}").count("session") == 1
    for bad in ("javascript:alert(1)", "http://evil.example/x", "//evil.example", "ftp://a/b"):
        with pytest.raises(ValidationFailed):
            resolve_success_url(bad, default=default, public_url="http://x")
