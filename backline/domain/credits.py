"""The CreditLedger aggregate: one per account, every credit movement as an event.

Each transaction event carries ``amount`` (a positive integer), ``balance_after``,
``ref`` and ``details``; its ``type`` is the event class (``purchase``, ``grant``,
``debit``, ``refund``, ``reversal``) and ``created_at`` is the event timestamp. Rules:

* the balance never goes negative (``insufficient_credits`` names needed/available);
* a ``ref`` is applied at most once: a retried debit or a replayed webhook with the same
  ref is recognised and writes nothing (commands return ``False``);
* a refund returns credits of one earlier debit, never more than it took;
* a reversal (card refund or dispute) takes back a purchase's credits, but never more
  than the balance: what cannot be taken back is recorded as ``shortfall``.

The ledger id is ``uuid5(LEDGER_NAMESPACE, str(account_id))`` so a first purchase and a
first debit racing to open the ledger collide in the store and one of them retries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, ValidationFailed

LEDGER_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/credit-ledger")
MAX_TRANSACTION_CREDITS = 1_000_000
MAX_REF_LENGTH = 200

PURCHASE = "purchase"
GRANT = "grant"
DEBIT = "debit"
REFUND = "refund"
REVERSAL = "reversal"
REINSTATEMENT = "reinstatement"
TRANSACTION_TYPES = (PURCHASE, GRANT, DEBIT, REFUND, REVERSAL, REINSTATEMENT)
SIGNS = {PURCHASE: 1, GRANT: 1, REFUND: 1, DEBIT: -1, REVERSAL: -1, REINSTATEMENT: 1}


def ledger_id(account_id: UUID) -> UUID:
    return uuid5(LEDGER_NAMESPACE, str(account_id))


def transaction_id(ledger: UUID, version: int) -> UUID:
    """Stable public id of the transaction recorded at ``version`` of a ledger."""
    return uuid5(ledger, str(version))


class InsufficientCredits(Conflict):
    code = "insufficient_credits"

    def __init__(self, needed: int, available: int) -> None:
        super().__init__(
            f"Not enough credits: {needed} needed, {available} available.",
            needed=needed,
            available=available,
        )
        self.needed = needed
        self.available = available


def check_amount(amount: object, field: str = "amount") -> int:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise ValidationFailed(f"{field} must be an integer.", code="invalid_amount", field=field)
    if not 1 <= amount <= MAX_TRANSACTION_CREDITS:
        raise ValidationFailed(
            f"{field} must be between 1 and {MAX_TRANSACTION_CREDITS}.",
            code="invalid_amount",
            field=field,
        )
    return amount


def check_ref(ref: object) -> str:
    if not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REF_LENGTH:
        raise ValidationFailed(
            f"ref must be a non-empty string of at most {MAX_REF_LENGTH} characters.",
            code="invalid_ref",
            field="ref",
        )
    return ref


class CreditLedger(Aggregate):
    TOPIC = "backline.CreditLedger"

    class Created(Aggregate.Created):
        TOPIC = "backline.CreditLedger.Created"

    class Event(Aggregate.Event):
        pass

    class Opened(Created):
        TOPIC = "backline.CreditLedger.Opened"
        account_id: UUID

    class Transaction(Event):
        """Base of the five transaction events (never stored itself)."""

        TOPIC = "backline.CreditLedger.Transaction"
        TX_TYPE: ClassVar[str] = ""
        amount: int
        balance_after: int
        ref: str
        details: dict[str, str]

    class Purchased(Transaction):
        TOPIC = "backline.CreditLedger.Purchased"
        TX_TYPE: ClassVar[str] = PURCHASE
        payment_ref: str
        amount_paid: int

    class Granted(Transaction):
        TOPIC = "backline.CreditLedger.Granted"
        TX_TYPE: ClassVar[str] = GRANT

    class Debited(Transaction):
        TOPIC = "backline.CreditLedger.Debited"
        TX_TYPE: ClassVar[str] = DEBIT

    class Refunded(Transaction):
        TOPIC = "backline.CreditLedger.Refunded"
        TX_TYPE: ClassVar[str] = REFUND
        of_ref: str

    class Reversed(Transaction):
        TOPIC = "backline.CreditLedger.Reversed"
        TX_TYPE: ClassVar[str] = REVERSAL
        payment_ref: str
        reversed_total: int
        shortfall: int

    class Reinstated(Transaction):
        """Credits a reversal took, given back (a dispute the merchant won)."""

        TOPIC = "backline.CreditLedger.Reinstated"
        TX_TYPE: ClassVar[str] = REINSTATEMENT
        payment_ref: str

    @staticmethod
    def create_id(account_id: UUID) -> UUID:
        return ledger_id(account_id)

    @event(Opened)
    def __init__(self, account_id: UUID) -> None:
        self.account_id = account_id
        self.balance = 0
        self.refs: set[str] = set()
        # payment_ref -> [credits, amount_paid_cents, reversed_total]
        self.purchases: dict[str, tuple[int, int, int, int]] = {}
        # debit ref -> [amount, refunded]
        self.debits: dict[str, tuple[int, int]] = {}
        self.purchased_total = 0
        self.granted_total = 0
        self.used_total = 0
        self.reversed_total = 0

    # -- queries ---------------------------------------------------------------------

    def clone(self) -> CreditLedger:
        """An independent copy with no pending events (for a fast-forwarding cache)."""
        if self._pending_events:
            raise ValueError("cannot clone a ledger with unsaved events")
        other = object.__new__(type(self))
        other.__dict__.update(self.__dict__)
        other._pending_events = []
        # Entries are immutable tuples: shallow copies are independent copies.
        other.refs = self.refs.copy()
        other.purchases = self.purchases.copy()
        other.debits = self.debits.copy()
        return other

    def has_applied(self, ref: str) -> bool:
        return ref in self.refs

    def purchase_of(self, payment_ref: str) -> tuple[int, int, int] | None:
        p = self.purchases.get(payment_ref)
        return (p[0], p[1], p[2]) if p is not None else None

    # -- commands (rules first, then the event) --------------------------------------

    def purchase(
        self,
        credits: int,
        ref: str,
        *,
        payment_ref: str,
        amount_paid: int,
        details: dict[str, str] | None = None,
    ) -> bool:
        check_amount(credits, "credits")
        check_ref(ref)
        check_ref(payment_ref)
        if isinstance(amount_paid, bool) or not isinstance(amount_paid, int) or amount_paid < 0:
            raise ValidationFailed(
                "amount_paid must be a non-negative integer.", code="invalid_amount"
            )
        if ref in self.refs:
            return False
        if payment_ref in self.purchases:
            return False  # one payment buys credits once, whatever the ref
        self._purchased(
            amount=credits,
            balance_after=self.balance + credits,
            ref=ref,
            details=dict(details or {}),
            payment_ref=payment_ref,
            amount_paid=amount_paid,
        )
        return True

    def grant(self, credits: int, ref: str, *, details: dict[str, str] | None = None) -> bool:
        check_amount(credits, "credits")
        check_ref(ref)
        if ref in self.refs:
            return False
        self._granted(
            amount=credits,
            balance_after=self.balance + credits,
            ref=ref,
            details=dict(details or {}),
        )
        return True

    def debit(self, credits: int, ref: str, *, details: dict[str, str] | None = None) -> bool:
        """Take ``credits``; ``False`` (nothing written) when ``ref`` was already debited."""
        check_amount(credits, "credits")
        check_ref(ref)
        if ref in self.refs:
            return False
        if credits > self.balance:
            raise InsufficientCredits(needed=credits, available=self.balance)
        self._debited(
            amount=credits,
            balance_after=self.balance - credits,
            ref=ref,
            details=dict(details or {}),
        )
        return True

    def refund(
        self, credits: int, ref: str, *, of_ref: str, details: dict[str, str] | None = None
    ) -> bool:
        """Give back (part of) an earlier debit, e.g. a release that could not be delivered."""
        check_amount(credits, "credits")
        check_ref(ref)
        if ref in self.refs:
            return False
        debit = self.debits.get(of_ref)
        if debit is None:
            raise ValidationFailed(
                f"No debit with ref {of_ref!r} to refund.", code="unknown_debit", field="of_ref"
            )
        refundable = debit[0] - debit[1]
        if credits > refundable:
            raise Conflict(
                f"Only {refundable} credits of {of_ref!r} can still be refunded.",
                code="refund_exceeds_debit",
                refundable=refundable,
            )
        self._refunded(
            amount=credits,
            balance_after=self.balance + credits,
            ref=ref,
            details=dict(details or {}),
            of_ref=of_ref,
        )
        return True

    def reverse(
        self,
        payment_ref: str,
        *,
        target_total: int,
        ref: str,
        details: dict[str, str] | None = None,
    ) -> bool:
        """Bring the credits taken back from a purchase up to ``target_total``.

        A full card refund or a dispute targets all the purchase's credits; a partial
        refund targets its share. Idempotent: a target already reached writes nothing.
        The balance never goes negative; the part that could not be taken back is the
        event's ``shortfall`` (credits the account already spent).
        """
        check_ref(ref)
        purchase = self.purchases.get(payment_ref)
        if purchase is None:
            raise ValidationFailed(
                f"No purchase paid by {payment_ref!r}.", code="unknown_payment", field="payment_ref"
            )
        credits, already = purchase[0], purchase[2]
        target = max(0, min(int(target_total), credits))
        wanted = target - already
        if wanted <= 0 or ref in self.refs:
            return False
        taken = min(wanted, self.balance)
        if taken == 0:
            # Nothing left to take: still record the reversal (amount 0 is not a
            # transaction), so it is tracked as a shortfall on the purchase.
            self._reversal_noted(
                payment_ref=payment_ref, reversed_total=target, shortfall=wanted, ref=ref
            )
            return True
        self._reversed(
            amount=taken,
            balance_after=self.balance - taken,
            ref=ref,
            details=dict(details or {}),
            payment_ref=payment_ref,
            reversed_total=target,
            shortfall=wanted - taken,
        )
        return True

    # -- events ------------------------------------------------------------------------

    def _record(self, amount: int, balance_after: int, ref: str) -> None:
        self.balance = balance_after
        self.refs.add(ref)

    @event(Purchased)
    def _purchased(
        self,
        amount: int,
        balance_after: int,
        ref: str,
        details: dict[str, str],
        payment_ref: str,
        amount_paid: int,
    ) -> None:
        self._record(amount, balance_after, ref)
        # [credits, amount paid, reversal target reached, credits actually taken back]
        self.purchases[payment_ref] = (amount, amount_paid, 0, 0)
        self.purchased_total += amount

    @event(Granted)
    def _granted(self, amount: int, balance_after: int, ref: str, details: dict[str, str]) -> None:
        self._record(amount, balance_after, ref)
        self.granted_total += amount

    @event(Debited)
    def _debited(self, amount: int, balance_after: int, ref: str, details: dict[str, str]) -> None:
        self._record(amount, balance_after, ref)
        self.debits[ref] = (amount, 0)
        self.used_total += amount

    @event(Refunded)
    def _refunded(
        self, amount: int, balance_after: int, ref: str, details: dict[str, str], of_ref: str
    ) -> None:
        self._record(amount, balance_after, ref)
        taken, refunded = self.debits[of_ref]
        self.debits[of_ref] = (taken, refunded + amount)
        self.used_total -= amount

    @event(Reversed)
    def _reversed(
        self,
        amount: int,
        balance_after: int,
        ref: str,
        details: dict[str, str],
        payment_ref: str,
        reversed_total: int,
        shortfall: int,
    ) -> None:
        self._record(amount, balance_after, ref)
        credits, paid, _target, taken = self.purchases[payment_ref]
        self.purchases[payment_ref] = (credits, paid, reversed_total, taken + amount)
        self.reversed_total += amount

    def reinstate(
        self, payment_ref: str, *, ref: str, details: dict[str, str] | None = None
    ) -> bool:
        """Give back every credit the reversals of this payment took (dispute won).

        The purchase can then be reversed again (a later refund). Idempotent by ``ref``;
        a payment nothing was taken from writes nothing.
        """
        check_ref(ref)
        purchase = self.purchases.get(payment_ref)
        if purchase is None:
            raise ValidationFailed(
                f"No purchase paid by {payment_ref!r}.", code="unknown_payment", field="payment_ref"
            )
        taken = purchase[3]
        if taken <= 0 or ref in self.refs:
            return False
        self._reinstated(
            amount=taken,
            balance_after=self.balance + taken,
            ref=ref,
            details=dict(details or {}),
            payment_ref=payment_ref,
        )
        return True

    @event(Reinstated)
    def _reinstated(
        self, amount: int, balance_after: int, ref: str, details: dict[str, str], payment_ref: str
    ) -> None:
        self._record(amount, balance_after, ref)
        credits, paid, _target, _taken = self.purchases[payment_ref]
        self.purchases[payment_ref] = (credits, paid, 0, 0)
        self.reversed_total -= amount

    class ReversalNoted(Event):
        """A reversal with nothing left to take (balance 0): only the shortfall."""

        TOPIC = "backline.CreditLedger.ReversalNoted"
        payment_ref: str
        reversed_total: int
        shortfall: int
        ref: str

    @event(ReversalNoted)
    def _reversal_noted(
        self, payment_ref: str, reversed_total: int, shortfall: int, ref: str
    ) -> None:
        self.refs.add(ref)
        credits, paid, _target, taken = self.purchases[payment_ref]
        self.purchases[payment_ref] = (credits, paid, reversed_total, taken)


TRANSACTION_EVENTS: tuple[type[CreditLedger.Transaction], ...] = (
    CreditLedger.Purchased,
    CreditLedger.Granted,
    CreditLedger.Debited,
    CreditLedger.Refunded,
    CreditLedger.Reversed,
    CreditLedger.Reinstated,
)
TYPE_BY_TOPIC: dict[str, str] = {cls.TOPIC: cls.TX_TYPE for cls in TRANSACTION_EVENTS}


_USED = {DEBIT: 1, REFUND: -1}
_PURCHASED = {PURCHASE: 1, REVERSAL: -1, REINSTATEMENT: 1}


@dataclass(slots=True)
class LedgerFold:
    """What an auditor rebuilds from one ledger's transactions alone, checking each rule.

    ``add`` takes ``(type, version, amount, balance_after, ref)`` in version order: each
    ``balance_after`` must equal the previous balance plus the signed amount, no balance
    may be negative, no ref may appear twice.
    """

    balance: int = 0
    transactions: int = 0
    used_total: int = 0
    purchased_total: int = 0
    last_version: int = 0
    problems: list[str] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)

    def add(self, tx_type: str, version: int, amount: int, balance_after: int, ref: str) -> None:
        sign = SIGNS.get(tx_type)
        refs = self.refs
        if not (
            sign is not None
            and amount > 0
            and balance_after >= 0
            and balance_after == self.balance + sign * amount
            and version > self.last_version
            and ref not in refs
        ):
            # The slow path names every rule the transaction breaks.
            if sign is None:
                self.problem(f"v{version}: unknown transaction type {tx_type!r}")
                return
            if amount <= 0:
                self.problem(f"v{version}: non-positive amount {amount}")
            expected = self.balance + sign * amount
            if balance_after != expected:
                self.problem(f"v{version}: balance_after {balance_after} != expected {expected}")
            if balance_after < 0:
                self.problem(f"v{version}: negative balance {balance_after}")
            if version <= self.last_version:
                self.problem(f"v{version}: out of order after v{self.last_version}")
            if ref in refs:
                self.problem(f"v{version}: ref {ref!r} applied twice")
        refs.add(ref)
        self.balance = balance_after
        self.transactions += 1
        self.last_version = version
        used = _USED.get(tx_type)
        if used is not None:
            self.used_total += used * amount
        else:
            self.purchased_total += _PURCHASED.get(tx_type, 0) * amount


def replay_transactions(rows: Iterable[tuple[str, int, int, int, str]]) -> LedgerFold:
    fold = LedgerFold()
    for row in rows:
        fold.add(*row)
    return fold


def event_type(e: Any) -> str:
    return str(getattr(type(e), "TX_TYPE", ""))
