"""Credits on the real stores (SQLite and PostgreSQL): idempotent commands, the credit
history projection, webhooks through the sandbox provider, auto-reload, the auditor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from uuid import UUID, uuid4

import msgspec
import pytest
import stripe

from backline.api.credits import credits_body
from backline.application.billing import PaymentNotRecorded
from backline.application.payments import InvalidWebhook
from backline.domain.credits import InsufficientCredits, ledger_id
from backline.infra.container import Container
from backline.projections.credits import LedgerAuditor, export_ledger
from tests.conftest import ROOT

PASSWORD = "correct horse battery staple"


def new_account(c: Container, email: str = "ada@example.com") -> UUID:
    return c.accounts.register(email, PASSWORD, "Ada", "Lovelace").account_id


def signed(c: Container, event: dict[str, object]) -> tuple[bytes, str]:
    payload = msgspec.json.encode(event)
    secret = c.sandbox_payments.webhook_secret  # type: ignore[union-attr]
    return payload, stripe.WebhookSignature.generate_signature_header(payload.decode(), secret)


def buy(c: Container, account: UUID, credits: int, *, save: bool = False, card: str = "visa"):
    created = c.billing.create_checkout(
        account, credits=credits, ui_mode="hosted", save_payment_method=save
    )
    payload, sig, _ = c.sandbox_payments.complete(created.session.id, card)  # type: ignore[union-attr]
    return created, payload, sig


def test_debits_grants_and_the_projection(container: Container) -> None:
    c = container
    a = new_account(c)
    assert c.credits.grant(a, 10, "promo:welcome").applied
    assert c.credits.debit(a, 3, "release:r1").balance == 7
    retry = c.credits.debit(a, 3, "release:r1")
    assert (retry.applied, retry.balance, retry.position) == (False, 7, 0)
    with pytest.raises(InsufficientCredits) as e:
        c.credits.debit(a, 8, "release:r2")
    assert e.value.details == {"needed": 8, "available": 7}
    c.credits.debit(a, 1, "token_offset:r1")
    c.credits.refund(a, 1, "refund:r1", of_ref="release:r1")
    c.runner.catch_up()
    body = credits_body(c, a, 10)
    assert body.balance == 7
    assert [t.type for t in body.transactions] == ["refund", "debit", "debit", "grant"]
    assert body.transactions[1].ref == "token_offset:r1"
    assert body.transactions[1].amount == 1  # amounts are positive; the type says which way
    assert (body.aggregates.usedTotal, body.aggregates.purchasedTotal) == (3, 0)
    assert len(credits_body(c, a, 2).transactions) == 2
    assert credits_body(c, a, 0).transactions == []
    assert credits_body(c, uuid4(), 10).balance == 0


@pytest.mark.parametrize("bad", [-1, 101, 2.5, True])
def test_transaction_limit_out_of_range(container: Container, bad: object) -> None:
    from backline.domain.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as e:
        credits_body(container, uuid4(), bad)
    assert e.value.code == "invalid_transaction_limit"


def test_checkout_webhook_grants_once_and_saves_the_card(container: Container) -> None:
    c = container
    a = new_account(c)
    created, payload, sig = buy(c, a, 25, save=True)
    assert created.session.provider == "sandbox"
    assert c.billing.handle_webhook(payload, sig).outcome == "granted"
    assert c.billing.handle_webhook(payload, sig).outcome == "duplicate"  # replayed
    # Another event id for the same session (async success after completed): still once.
    event = msgspec.json.decode(payload)
    event["id"] = "evt_other"
    event["type"] = "checkout.session.async_payment_succeeded"
    assert c.billing.handle_webhook(*signed(c, event)).outcome == "duplicate"
    assert c.credits.balance(a) == 25
    profile = c.billing.profile(a)
    assert profile is not None
    assert profile.latest_card is not None
    assert profile.latest_card.last4 == "4242"


def test_bad_signature_changes_nothing(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, sig = buy(c, a, 5)
    head = c.store.max_position()
    with pytest.raises(InvalidWebhook):
        c.billing.handle_webhook(payload, sig.replace("v1=", "v1=0"))
    with pytest.raises(InvalidWebhook):
        c.billing.handle_webhook(payload.replace(b'"5"', b'"500"'), sig)  # tampered body
    with pytest.raises(InvalidWebhook):
        c.billing.handle_webhook(payload, "")
    assert c.store.max_position() == head
    assert c.credits.balance(a) == 0


def test_unknown_user_and_unknown_events_are_acknowledged(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, _ = buy(c, a, 5)
    event = msgspec.json.decode(payload)
    event["data"]["object"]["metadata"]["user_id"] = str(uuid4())
    head = c.store.max_position()
    assert c.billing.handle_webhook(*signed(c, event)).outcome == "ignored_unknown_user"
    other = {"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}}
    assert c.billing.handle_webhook(*signed(c, other)).outcome == "ignored"
    unpaid = msgspec.json.decode(payload)
    unpaid["data"]["object"]["payment_status"] = "unpaid"
    assert c.billing.handle_webhook(*signed(c, unpaid)).outcome == "awaiting_payment"
    assert c.store.max_position() == head


def test_refunds_and_disputes_reverse_credits_idempotently(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, sig = buy(c, a, 10)
    c.billing.handle_webhook(payload, sig)
    pi = msgspec.json.decode(payload)["data"]["object"]["payment_intent"]
    partial = {
        "id": "evt_refund_1",
        "type": "charge.refunded",
        "data": {
            "object": {
                "id": "ch_1",
                "object": "charge",
                "payment_intent": pi,
                "amount": 1000,
                "amount_captured": 1000,
                "amount_refunded": 400,
                "refunded": False,
            }
        },
    }
    assert c.billing.handle_webhook(*signed(c, partial)).outcome == "reversed"
    assert c.billing.handle_webhook(*signed(c, partial)).outcome == "duplicate"
    assert c.credits.balance(a) == 6
    c.credits.debit(a, 5, "release:r1")
    dispute = {
        "id": "evt_dispute",
        "type": "charge.dispute.created",
        "data": {"object": {"id": "dp_1", "object": "dispute", "payment_intent": pi}},
    }
    assert c.billing.handle_webhook(*signed(c, dispute)).outcome == "reversed"
    assert c.credits.balance(a) == 0  # never negative; 5 credits recorded as shortfall
    won = {
        "id": "evt_dispute_won",
        "type": "charge.dispute.closed",
        "data": {
            "object": {"id": "dp_1", "object": "dispute", "payment_intent": pi, "status": "won"}
        },
    }
    assert c.billing.handle_webhook(*signed(c, won)).outcome == "reinstated"
    assert c.billing.handle_webhook(*signed(c, won)).outcome == "duplicate"
    assert c.credits.balance(a) == 5  # what the refund and the dispute actually took back
    lost = dict(won, id="evt_dispute_lost")
    lost["data"] = {"object": dict(won["data"]["object"], id="dp_2", status="lost")}
    assert c.billing.handle_webhook(*signed(c, lost)).outcome == "ignored"
    # A refund for a payment never recorded (reordered delivery): 409 so Stripe retries.
    stray = dict(partial, id="evt_stray")
    stray["data"] = {"object": dict(partial["data"]["object"], payment_intent="pi_unknown")}
    with pytest.raises(PaymentNotRecorded):
        c.billing.handle_webhook(*signed(c, stray))
    # Still unknown an hour later: not one of ours; acknowledged, nothing changes.
    import time

    old = dict(stray, id="evt_stray_old", created=int(time.time()) - 7200)
    assert c.billing.handle_webhook(*signed(c, old)).outcome == "ignored_unknown_payment"


def test_auto_reload_charges_once_then_declines_without_looping(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, sig = buy(c, a, 10, save=True)
    c.billing.handle_webhook(payload, sig)
    c.billing.set_autoreload(a, enabled=True, package_id="credits_25", threshold=2)
    c.credits.debit(a, 8, "release:r1")  # 10 -> 2: at the threshold
    c.autoreload.catch_up()
    assert c.credits.balance(a) == 27
    c.autoreload.catch_up()  # the same events again: nothing more
    assert c.credits.balance(a) == 27
    profile = c.billing.profile(a)
    assert profile is not None
    assert profile.last_status is not None
    assert profile.last_status["status"] == "succeeded"

    b = new_account(c, "bob@example.com")
    _, payload, sig = buy(c, b, 3, save=True, card="charge_declined")
    c.billing.handle_webhook(payload, sig)
    c.billing.set_autoreload(b, enabled=True, quantity=5, threshold=1)
    c.credits.debit(b, 2, "release:b1")  # 3 -> 1
    c.autoreload.catch_up()
    profile = c.billing.profile(b)
    assert profile is not None
    assert profile.last_status is not None
    assert profile.last_status["status"] == "declined"
    assert profile.suspended
    c.credits.debit(b, 1, "release:b2")  # 1 -> 0: suspended, no new attempt
    c.autoreload.catch_up()
    assert c.billing.profile(b).last_status["status"] == "declined"  # type: ignore[union-attr]
    assert c.credits.balance(b) == 0


def test_audit_passes_then_catches_a_tampered_projection(container: Container) -> None:
    c = container
    a = new_account(c)
    c.credits.grant(a, 10, "promo:1")
    c.credits.debit(a, 4, "release:r1")
    c.runner.catch_up()
    assert LedgerAuditor(c.store, c.read).audit().ok
    with c.read.transaction() as tx:
        tx.execute(
            "UPDATE credit_transactions SET amount = 5 WHERE ledger_id = ? AND type = 'debit'",
            (str(ledger_id(a)),),
        )
    report = LedgerAuditor(c.store, c.read).audit()
    assert not report.ok
    assert "differs" in report.differences[0]
    with c.read.transaction() as tx:
        tx.execute(
            "UPDATE credit_balances SET balance = 99 WHERE ledger_id = ?", (str(ledger_id(a)),)
        )
    assert any("balance 99" in d for d in LedgerAuditor(c.store, c.read).audit(a).differences)


def test_export_csv_and_json(container: Container) -> None:
    c = container
    a = new_account(c)
    c.credits.grant(a, 10, "promo:1")
    c.credits.debit(a, 4, "release:r1")
    csv_text = export_ledger(c.store, a, "csv")
    lines = csv_text.strip().splitlines()
    assert lines[0] == "id,version,type,amount,balance_after,ref,created_at,details"
    assert ",debit,4,6,release:r1," in lines[2]
    body = msgspec.json.decode(export_ledger(c.store, a, "json"))
    assert [t["balance_after"] for t in body["transactions"]] == [10, 6]


def test_cli_audit_and_export_exit_codes(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    env = {
        "BACKLINE_DATA_DIR": str(tmp_path),
        "BACKLINE_DATABASE_URL": db,
        "BACKLINE_SECRET_KEY": "test-secret-key-" + "x" * 32,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
    }
    c = Container.build(make_settings(db, tmp_path))
    try:
        a = new_account(c)
        c.credits.grant(a, 10, "promo:1")
        c.credits.debit(a, 4, "release:r1")
    finally:
        c.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "backline.infra.cli", "ledger", *args],
            env={"PATH": "/usr/bin:/bin", **env},
            cwd=str(ROOT),
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = cli("audit")
    assert ok.returncode == 0, ok.stderr
    assert "ledger audit OK: 1 ledgers, 2 transactions" in ok.stdout
    exported = cli("export", "--account", str(a), "--format", "json")
    assert exported.returncode == 0
    assert msgspec.json.decode(exported.stdout)["transactions"][1]["ref"] == "release:r1"
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        conn.execute("UPDATE credit_balances SET balance = 1")
    bad = cli("audit", "--account", str(a))
    assert bad.returncode == 1
    assert "DIFFERENCE" in bad.stdout
    assert cli("export", "--account", "nope").returncode != 0


def test_the_ledger_cache_fast_forwards_over_other_processes_writes(
    database_url: str, tmp_path: Path
) -> None:
    from tests.conftest import make_settings

    a_side = Container.build(make_settings(database_url, tmp_path / "a"))
    b_side = Container.build(make_settings(database_url, tmp_path / "b"))
    try:
        account = new_account(a_side)
        a_side.credits.grant(account, 5, "promo:1")
        assert a_side.credits.balance(account) == 5  # now cached in A
        b_side.credits.debit(account, 2, "release:b")  # written by "another process"
        assert a_side.credits.balance(account) == 3
        assert a_side.credits.debit(account, 2, "release:b").applied is False
        with pytest.raises(InsufficientCredits):
            a_side.credits.debit(account, 4, "release:a")
        ledger = a_side.credits.load_ledger(account)
        ledger.debit(3, "release:a2")
        a_side.store.save_all(ledger)  # saved outside the service: the cache catches up
        assert b_side.credits.balance(account) == 0
        assert a_side.credits.balance(account) == 0
    finally:
        a_side.close()
        b_side.close()


def test_a_use_case_may_debit_inside_its_own_retry(container: Container) -> None:
    c = container
    a = new_account(c)
    c.credits.grant(a, 3, "promo:1")
    result = c.credits.retry(a, lambda: c.credits.debit(a, 2, "release:nested"))
    assert (result.applied, result.balance) == (True, 1)


def test_payment_intent_succeeded_saves_the_card_once(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, sig = buy(c, a, 5, save=False)
    c.billing.handle_webhook(payload, sig)
    assert c.billing.profile(a).latest_card is None  # type: ignore[union-attr]
    pi = msgspec.json.decode(payload)["data"]["object"]["payment_intent"]
    event = {
        "id": "evt_pi_ok",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": pi,
                "object": "payment_intent",
                "status": "succeeded",
                "setup_future_usage": "off_session",
                "metadata": {"user_id": str(a), "credits": "5", "save_payment_method": "true"},
            }
        },
    }
    assert c.billing.handle_webhook(*signed(c, event)).outcome == "card_saved"
    assert c.billing.handle_webhook(*signed(c, event)).outcome == "duplicate"
    assert c.billing.profile(a).latest_card.last4 == "4242"  # type: ignore[union-attr]
    assert c.credits.balance(a) == 5  # a card event grants nothing


def test_a_shortfall_reload_for_a_command_and_its_repeat(container: Container) -> None:
    c = container
    a = new_account(c)
    _, payload, sig = buy(c, a, 5, save=True)
    c.billing.handle_webhook(payload, sig)
    c.billing.set_autoreload(a, enabled=True, package_id="credits_10", threshold=0)
    lid = ledger_id(a)
    assert c.billing.maybe_reload(lid, "release-shortfall-8") == "not_needed"  # 5 > 0
    assert c.billing.maybe_reload(lid, "release-shortfall-8", need=8) == "succeeded"
    assert c.credits.balance(a) == 15
    assert c.billing.maybe_reload(lid, "release-shortfall-8", need=8) == "not_needed"
    c.credits.debit(a, 10, "release:r1")  # 15 -> 5
    # The same trigger text later, on a different ledger state: a new attempt, new credits.
    assert c.billing.maybe_reload(lid, "release-shortfall-8", need=8) == "succeeded"
    assert c.credits.balance(a) == 15


def test_audit_compares_exactly_the_projected_prefix_of_the_log(container: Container) -> None:
    c = container
    a = new_account(c)
    b = new_account(c, "bob@example.com")
    c.credits.grant(a, 10, "promo:1")
    c.credits.grant(b, 10, "promo:1")
    c.runner.catch_up()
    c.credits.debit(a, 4, "release:later")  # in the log, not yet projected
    auditor = LedgerAuditor(c.store, c.read)
    for report in (auditor.audit(), auditor.audit(a), auditor.audit(b)):
        assert report.ok, report.differences
    assert auditor.audit(a).events == 1
    c.runner.catch_up()
    assert auditor.audit(a).events == 2
    assert auditor.audit().events == 3


def test_debits_deciding_on_a_stale_cache_still_get_it_right(
    database_url: str, tmp_path: Path
) -> None:
    from tests.conftest import make_settings

    a_side = Container.build(make_settings(database_url, tmp_path / "a"))
    b_side = Container.build(make_settings(database_url, tmp_path / "b"))
    try:
        account = new_account(a_side)
        a_side.credits.grant(account, 5, "promo:1")
        assert a_side.credits.debit(account, 1, "release:a0").balance == 4  # A caches v3
        b_side.credits.debit(account, 4, "release:b1")  # actual balance 0; A's cache says 4
        with pytest.raises(InsufficientCredits) as e:
            a_side.credits.debit(account, 2, "release:a1")
        assert e.value.details == {"needed": 2, "available": 0}
        b_side.credits.grant(account, 10, "promo:2")  # actual 10; A's cache says 0
        assert a_side.credits.debit(account, 3, "release:a2").balance == 7
        b_side.credits.debit(account, 1, "release:b2")  # actual 6; A doesn't know b2
        dup = a_side.credits.debit(account, 1, "release:b2")
        assert (dup.applied, dup.balance) == (False, 6)
        c = a_side
        c.runner.catch_up()
        assert LedgerAuditor(c.store, c.read).audit().ok
    finally:
        a_side.close()
        b_side.close()
