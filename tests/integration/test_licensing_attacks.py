"""Licensing against a real EVM (eth-tester + py-evm, test USDC compiled from Vyper).

Every attack from issue 7 is attempted and must be refused; the honest payment next to
it must still go through.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from backline.adapters.chain.evm import DevChain, eip3009_typed_data
from backline.application.chain import Authorization
from backline.application.licensing import (
    DownloadExpired,
    LicensingConfig,
    LicensingService,
    PaymentRejected,
    _AlreadyClaimed,
)
from backline.domain.errors import Conflict, NotFound
from backline.domain.licensing import verify_document
from backline.infra.container import Container
from tests.conftest import make_settings

KEY = b"k" * 40
PRICE = 5_000_000


def _track(external_id: str, price: int = PRICE) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "title": f"Track {external_id}",
        "duration": "3:10",
        "artists": [{"id": 1, "name": "Ivy Harbor"}],
        "genre": "Rock",
        "subgenre": "Indie",
        "mood": "Upbeat",
        "bpm": 120,
        "key": "G Maj",
        "instrumental": True,
        "description": "driving indie rock with guitars",
        "formats_available": {"mp3": False, "wav": True, "aif": True},
        "license_options": {
            "social_media": {"price_units": price},
            "all_digital": {"price_units": price * 4},
        },
        "payees": [{"name": "Ivy Harbor", "wallet": "0x" + "1" * 40, "share_bps": 10_000}],
    }


@pytest.fixture(scope="module")
def chain() -> DevChain:
    return DevChain()


@pytest.fixture
def env(tmp_path: Path, chain: DevChain) -> Iterator[dict[str, Any]]:
    c = Container.build(make_settings(f"sqlite:///{tmp_path / 'b.db'}", tmp_path))
    ids = []
    for n in range(3):
        track_id, _pos = c.agent.catalog.list_track(_track(f"t-{n}"), source="test")
        ids.append(track_id)
    c.runner.catch_up()
    svc = LicensingService(
        c.store,
        chain,
        c.agent.catalog_queries.get,
        LicensingConfig(public_url="http://test", signing_key=KEY, confirmations=1),
    )
    yield {"c": c, "svc": svc, "tracks": ids}
    c.close()


def wallet(chain: DevChain, usdc: int = 100_000_000) -> Any:
    acct = Account.create()
    chain.fund(acct.address, usdc)
    return acct


def pay(chain: DevChain, acct: Any, to: str, units: int, token: Any = None) -> Any:
    return chain.transfer_from_key(acct.key.hex(), to, units, token=token)


def status(svc: LicensingService, lic: Any) -> str:
    return svc.check(lic.id).status


def sign(
    chain: DevChain,
    acct: Any,
    to: str,
    value: int,
    *,
    chain_id: int | None = None,
    valid_after: int = 0,
    valid_before: int | None = None,
    nonce: str | None = None,
) -> Authorization:
    head = chain.head()
    auth = Authorization(
        sender=acct.address,
        receiver=to,
        value=value,
        valid_after=valid_after,
        valid_before=valid_before if valid_before is not None else head.timestamp + 600,
        nonce=nonce or "0x" + os.urandom(32).hex(),
        signature="0x",
    )
    typed = eip3009_typed_data(
        auth,
        chain_id=chain_id or chain.chain_id,
        token=chain.token_address,
        name="USD Coin",
        version="2",
    )
    sig = Account.sign_typed_data(acct.key, typed["domain"], typed["types"], typed["message"])
    return Authorization(**{**auth.__dict__, "signature": "0x" + sig.signature.hex()})


# -- the honest paths ----------------------------------------------------------------------


def test_plain_transfer_issues_a_signed_license(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    assert PRICE < lic.amount_units < PRICE + 10_000  # unique suffix below one cent
    assert status(svc, lic) == "awaiting_payment"
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    view = svc.check(lic.id)
    assert view.status == "license_issued"
    doc = view.license.document
    assert doc is not None
    assert verify_document(doc, KEY)
    assert doc["payment"]["payer"] == payer.address
    assert doc["payment"]["amount_units"] == lic.amount_units
    assert doc["payees"][0]["amount_usdc"] == "5.00"
    urls = svc.download_urls(view.license)
    assert urls["mp3"] is None
    assert urls["wav"]
    assert urls["aif"]


def test_x402_authorization_is_verified_and_settled(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][1], "all_digital", None)
    before = chain.balance_of(lic.receiving_address)
    auth = sign(chain, payer, lic.receiving_address, lic.amount_units)
    view = svc.settle_x402(env["tracks"][1], "all_digital", auth)
    assert view.status == "license_issued"
    assert chain.balance_of(lic.receiving_address) - before == lic.amount_units
    assert view.license.payment
    assert view.license.payment["method"] == "x402"


# -- attacks: the transfer path ---------------------------------------------------------------


def test_wrong_token_contract_is_ignored(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    other = chain.deploy_other_token()
    chain._send(chain._deployer, other.functions.mint(payer.address, 10**9))
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    pay(chain, payer, lic.receiving_address, lic.amount_units, token=other)
    assert status(svc, lic) == "awaiting_payment"


@pytest.mark.parametrize("delta", [-1, 1, -1000, 10**6])
def test_wrong_amount_is_ignored(env: dict[str, Any], chain: DevChain, delta: int) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    pay(chain, payer, lic.receiving_address, lic.amount_units + delta)
    pay(chain, payer, lic.receiving_address, lic.price_units)  # the list price, no suffix
    assert status(svc, lic) == "awaiting_payment"
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    assert status(svc, lic) == "license_issued"


def test_wrong_sender_is_ignored(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    declared, stranger = wallet(chain), wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", declared.address)
    pay(chain, stranger, lic.receiving_address, lic.amount_units)
    assert status(svc, lic) == "awaiting_payment"


def test_wrong_recipient_is_ignored(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    pay(chain, payer, Account.create().address, lic.amount_units)
    assert status(svc, lic) == "awaiting_payment"


def test_transfer_before_the_payment_existed_is_ignored(
    env: dict[str, Any], chain: DevChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    import backline.application.licensing as licensing

    monkeypatch.setattr(licensing.secrets, "randbelow", lambda n: 4242)
    amount = PRICE + 1 + 4242
    pay(chain, payer, chain.receiving_address, amount)  # paid before asking
    lic = svc.request(env["tracks"][2], "social_media", payer.address)
    assert lic.amount_units == amount
    chain.mine(2)
    assert status(svc, lic) == "awaiting_payment"


def test_one_transfer_cannot_pay_two_payments(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    first = svc.request(env["tracks"][0], "social_media", payer.address)
    second = svc.request(env["tracks"][0], "social_media", payer.address)
    assert first.amount_units != second.amount_units  # open payments never share an amount
    transfer = pay(chain, payer, first.receiving_address, first.amount_units)
    assert status(svc, first) == "license_issued"
    assert status(svc, second) == "awaiting_payment"
    with pytest.raises(_AlreadyClaimed):  # even presented directly, the claim holds
        svc._pay_and_issue(second.id, transfer, method="transfer")


def test_open_payments_never_share_an_amount(
    env: dict[str, Any], chain: DevChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc: LicensingService = env["svc"]
    import backline.application.licensing as licensing

    picks = iter([77, 77, 78])
    monkeypatch.setattr(licensing.secrets, "randbelow", lambda n: next(picks))
    a = svc.request(env["tracks"][0], "social_media", None)
    b = svc.request(env["tracks"][0], "social_media", None)
    assert (a.amount_units, b.amount_units) == (PRICE + 78, PRICE + 79)
    monkeypatch.setattr(licensing.secrets, "randbelow", lambda n: 77)
    with pytest.raises(Conflict):
        svc.request(env["tracks"][0], "social_media", None)


def test_wallet_spoofing_cannot_take_the_victims_payment(
    env: dict[str, Any], chain: DevChain
) -> None:
    svc: LicensingService = env["svc"]
    victim, attacker = wallet(chain), wallet(chain)
    spoofed = svc.request(env["tracks"][0], "all_digital", victim.address)  # attacker's
    own = svc.request(env["tracks"][0], "all_digital", victim.address)  # victim's
    pay(chain, victim, own.receiving_address, own.amount_units)
    assert status(svc, own) == "license_issued"
    assert status(svc, spoofed) == "awaiting_payment"
    # Nor can the attacker pay for the spoofed payment with his own authorization.
    auth = sign(chain, attacker, spoofed.receiving_address, spoofed.amount_units)
    with pytest.raises(PaymentRejected) as e:
        svc.settle_x402(env["tracks"][0], "all_digital", auth)
    assert e.value.code == "invalid_exact_evm_payload_authorization_from"


def test_reorg_after_first_confirmation_does_not_issue(
    env: dict[str, Any], chain: DevChain
) -> None:
    c = env["c"]
    svc = LicensingService(
        c.store,
        chain,
        c.agent.catalog_queries.get,
        LicensingConfig(public_url="http://test", signing_key=KEY, confirmations=3),
    )
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    snapshot = chain.snapshot()
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    assert status(svc, lic) == "awaiting_payment"  # one confirmation of three
    chain.revert(snapshot)  # the block with the transfer is gone
    chain.mine(5)
    assert status(svc, lic) == "awaiting_payment"
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    assert status(svc, lic) == "awaiting_payment"
    chain.mine(2)
    assert status(svc, lic) == "license_issued"


def test_expiry_is_judged_by_block_time(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    snapshot = chain.snapshot()
    try:
        chain.time_travel(16 * 60)
        pay(chain, payer, lic.receiving_address, lic.amount_units)  # too late
        assert status(svc, lic) == "expired"
        auth = sign(chain, payer, lic.receiving_address, lic.amount_units)
        with pytest.raises(PaymentRejected):
            svc.settle_x402(env["tracks"][0], "social_media", auth, lic.id)
    finally:
        chain.revert(snapshot)


# -- attacks: the x402 path --------------------------------------------------------------------


def test_replayed_authorization_is_refused(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    first = svc.request(env["tracks"][0], "social_media", None)
    auth = sign(chain, payer, first.receiving_address, first.amount_units)
    assert svc.settle_x402(env["tracks"][0], "social_media", auth).status == "license_issued"
    with pytest.raises(PaymentRejected):  # same payment again
        svc.settle_x402(env["tracks"][0], "social_media", auth, first.id)
    second = svc.request(env["tracks"][0], "social_media", None)
    reused = sign(chain, payer, second.receiving_address, second.amount_units, nonce=auth.nonce)
    with pytest.raises(PaymentRejected) as e:
        svc.settle_x402(env["tracks"][0], "social_media", reused)
    assert e.value.code == "invalid_exact_evm_payload_authorization_nonce"
    assert status(svc, second) == "awaiting_payment"


def test_expired_authorization_is_refused(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", None)
    head = chain.head()
    auth = sign(
        chain, payer, lic.receiving_address, lic.amount_units, valid_before=head.timestamp - 1
    )
    with pytest.raises(PaymentRejected) as e:
        svc.settle_x402(env["tracks"][0], "social_media", auth)
    assert e.value.code == "invalid_exact_evm_payload_authorization_valid_before"
    future = sign(
        chain,
        payer,
        lic.receiving_address,
        lic.amount_units,
        valid_after=head.timestamp + 3600,
        valid_before=head.timestamp + 7200,
    )
    with pytest.raises(PaymentRejected):
        svc.settle_x402(env["tracks"][0], "social_media", future)
    assert status(svc, lic) == "awaiting_payment"


def test_signature_for_another_chain_is_refused(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", None)
    auth = sign(chain, payer, lic.receiving_address, lic.amount_units, chain_id=84532)
    with pytest.raises(PaymentRejected) as e:
        svc.settle_x402(env["tracks"][0], "social_media", auth)
    assert e.value.code == "invalid_exact_evm_payload_signature"
    # And the contract agrees: settling it directly reverts.
    assert not chain.settle(auth).success


def test_wrong_recipient_or_amount_authorization_is_refused(
    env: dict[str, Any], chain: DevChain
) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", None)
    elsewhere = sign(chain, payer, Account.create().address, lic.amount_units)
    with pytest.raises(PaymentRejected):
        svc.settle_x402(env["tracks"][0], "social_media", elsewhere, lic.id)
    short = sign(chain, payer, lic.receiving_address, lic.amount_units - 1)
    with pytest.raises(PaymentRejected):
        svc.settle_x402(env["tracks"][0], "social_media", short, lic.id)
    assert status(svc, lic) == "awaiting_payment"


# -- documents and links ---------------------------------------------------------------------


def test_tampered_document_and_expired_link(env: dict[str, Any], chain: DevChain) -> None:
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    view = svc.check(lic.id)
    doc = dict(view.license.document or {})
    assert verify_document(doc, KEY)
    assert not verify_document({**doc, "license": {**doc["license"], "territories": "mars"}}, KEY)
    assert not verify_document({**doc, "signature": "0" * 64}, KEY)
    assert not verify_document(doc, b"another-key" * 4)
    url = svc.download_urls(view.license)["wav"]
    assert url is not None
    query = dict(p.split("=") for p in url.split("?", 1)[1].split("&"))
    expires, sig = int(query["expires"]), query["signature"]
    assert svc.check_download(lic.id, "wav", expires, sig).id == lic.id
    with pytest.raises(NotFound):
        svc.check_download(lic.id, "wav", expires + 10_000, sig)  # extended by hand
    with pytest.raises(NotFound):
        svc.check_download(lic.id, "aif", expires, sig)  # another format
    svc.clock = _Later(timedelta(hours=2))
    with pytest.raises(DownloadExpired):
        svc.check_download(lic.id, "wav", expires, sig)


class _Later:
    def __init__(self, delta: timedelta) -> None:
        self.delta = delta

    def now(self) -> datetime:
        return datetime.now(UTC) + self.delta


def test_open_payments_feed_the_watcher(env: dict[str, Any], chain: DevChain) -> None:
    """The watcher's list of open payments follows the License events."""
    c = env["c"]
    svc: LicensingService = env["svc"]
    payer = wallet(chain)
    lic = svc.request(env["tracks"][0], "social_media", payer.address)
    c.runner.catch_up()
    assert lic.id in c.agent.licenses.open_payment_ids()
    pay(chain, payer, lic.receiving_address, lic.amount_units)
    c.agent.licensing = svc  # the watcher checks with the service under test
    for payment_id in c.agent.licenses.open_payment_ids():
        svc.check(payment_id)
    c.runner.catch_up()
    assert lic.id not in c.agent.licenses.open_payment_ids()
    row = c.agent.licenses.get(lic.id)
    assert row is not None
    assert row["status"] == "license_issued"
