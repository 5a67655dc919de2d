"""Recording and release identifiers: ISRC and UPC/EAN (GTIN), their checks and assignment.

ISRC (ISO 3901): ``CC-XXX-YY-NNNNN`` — a 2-letter country code, a 3-character registrant
code (letters and digits), the 2-digit year of reference and a 5-digit designation code.
It is stored and delivered without hyphens (12 characters, upper case); input may carry
hyphens or lower case. Backline assigns ISRCs from a configured *registrant prefix*
(country + registrant, e.g. ``QZ-K6L``): the designation codes of a prefix and year come
from :class:`IdentifierSequence` aggregates and every ISRC is claimed by an
:class:`IdentifierClaim` saved in the same transaction as the release, so no two
releases of different accounts get the same ISRC. An account may reuse its own ISRC on
another release (the same recording on a single and on an album).

UPC-A (12 digits) and EAN-13 (13 digits) end in a GS1 mod-10 check digit. Assigned UPCs
are UPC-A: the configured GS1 company prefix, an item reference from a sequence, and the
check digit. A UPC names exactly one release.

Sequences are *sharded*: shard ``s`` of ``n`` hands out the numbers ``s, s+n, s+2n, …``
so concurrent submissions rarely touch the same aggregate (the store would make one of
them retry). The claims, not the sequences, are what guarantee uniqueness: a number
whose value is already claimed (e.g. given by a user) is skipped.
"""

from __future__ import annotations

import re
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, ValidationFailed

ISRC_LENGTH = 12
DESIGNATION_SPACE = 100_000  # NNNNN
_ISRC_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{2}[0-9]{5}$")
_PREFIX_RE = re.compile(r"^[A-Z]{2}[A-Z0-9]{3}$")

SEQUENCE_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/identifier-sequence")
CLAIM_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/identifier-claim")
DEFAULT_SHARDS = 16


# -- ISRC ---------------------------------------------------------------------------------


def normalize_isrc(raw: str) -> str:
    """Upper case, hyphens and spaces removed (``us-rc1-76-07839`` → ``USRC17607839``)."""
    return re.sub(r"[\s-]", "", raw).upper()


def is_valid_isrc(raw: object) -> bool:
    return isinstance(raw, str) and bool(_ISRC_RE.match(normalize_isrc(raw)))


def check_isrc(raw: object, field: str = "isrc") -> str:
    """The normalised ISRC, or ``ValidationFailed`` naming ``field``."""
    if not isinstance(raw, str) or not is_valid_isrc(raw):
        raise ValidationFailed(
            f"{field} must be an ISRC: CC-XXX-YY-NNNNN (2-letter country, 3-character "
            "registrant, 2-digit year, 5-digit designation), e.g. USRC17607839.",
            code="invalid_isrc",
            field=field,
        )
    return normalize_isrc(raw)


def format_isrc(isrc: str) -> str:
    """Display form with hyphens: ``US-RC1-76-07839``."""
    i = normalize_isrc(isrc)
    return f"{i[0:2]}-{i[2:5]}-{i[5:7]}-{i[7:12]}"


def check_registrant_prefix(raw: str) -> str:
    prefix = normalize_isrc(raw)
    if not _PREFIX_RE.match(prefix):
        raise ValueError(
            f"ISRC registrant prefix {raw!r} must be a 2-letter country code and a "
            "3-character registrant code, e.g. QZ-K6L"
        )
    return prefix


def make_isrc(prefix: str, year: int, designation: int) -> str:
    if not 0 <= designation < DESIGNATION_SPACE:
        raise ValueError("designation code out of range")
    return f"{check_registrant_prefix(prefix)}{year % 100:02d}{designation:05d}"


# -- UPC / EAN (GTIN) -------------------------------------------------------------------------


def gtin_check_digit(body: str) -> int:
    """GS1 mod-10 check digit of ``body`` (the digits before the check digit).

    From the right, digits are weighted 3, 1, 3, 1, …; the check digit brings the
    weighted sum to a multiple of 10. The same rule serves UPC-A, EAN-13 and GTIN-14.
    """
    if not body.isdigit():
        raise ValueError("GTIN body must be digits")
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def normalize_upc(raw: str) -> str:
    return re.sub(r"[\s-]", "", raw)


def is_valid_upc(raw: object) -> bool:
    if not isinstance(raw, str):
        return False
    code = normalize_upc(raw)
    if len(code) not in (12, 13) or not code.isdigit() or not code.isascii():
        return False
    return gtin_check_digit(code[:-1]) == int(code[-1])


def check_upc(raw: object, field: str = "upc") -> str:
    if not isinstance(raw, str):
        raise ValidationFailed(f"{field} must be a string.", code="invalid_upc", field=field)
    code = normalize_upc(raw)
    if len(code) not in (12, 13) or not code.isdigit() or not code.isascii():
        raise ValidationFailed(
            f"{field} must be a 12-digit UPC-A or a 13-digit EAN-13.",
            code="invalid_upc",
            field=field,
        )
    expected = gtin_check_digit(code[:-1])
    if expected != int(code[-1]):
        raise ValidationFailed(
            f"{field} has a wrong check digit (expected {expected}).",
            code="invalid_upc",
            field=field,
        )
    return code


def check_upc_prefix(raw: str) -> str:
    prefix = raw.strip()
    if not prefix.isdigit() or not prefix.isascii() or not 6 <= len(prefix) <= 10:
        raise ValueError(f"UPC company prefix {raw!r} must be 6 to 10 digits")
    return prefix


def upc_capacity(prefix: str) -> int:
    """How many item references a company prefix leaves in a UPC-A."""
    return int(10 ** (11 - len(prefix)))


def make_upc(prefix: str, item: int) -> str:
    digits = 11 - len(prefix)
    if not 0 <= item < 10**digits:
        raise ValueError("item reference out of range")
    body = f"{prefix}{item:0{digits}d}"
    return body + str(gtin_check_digit(body))


# -- aggregates ---------------------------------------------------------------------------


def sequence_id(kind: str, scope: str, shard: int) -> UUID:
    return uuid5(SEQUENCE_NAMESPACE, f"{kind}:{scope}:{shard}")


def claim_id(kind: str, value: str) -> UUID:
    return uuid5(CLAIM_NAMESPACE, f"{kind}:{value}")


class SequenceExhausted(Conflict):
    code = "identifier_space_exhausted"


class IdentifierSequence(Aggregate):
    """One shard of a number sequence (``kind`` isrc/upc, ``scope`` e.g. prefix+year).

    Shard ``shard`` of ``shards`` hands out ``shard + k*shards`` for k = 0, 1, …
    below ``capacity``.
    """

    TOPIC = "backline.IdentifierSequence"

    class Created(Aggregate.Created):
        TOPIC = "backline.IdentifierSequence.Created"

    class Event(Aggregate.Event):
        pass

    class Started(Created):
        TOPIC = "backline.IdentifierSequence.Started"
        kind: str
        scope: str
        shard: int
        shards: int
        capacity: int

    @staticmethod
    def create_id(kind: str, scope: str, shard: int, **_: object) -> UUID:
        return sequence_id(kind, scope, shard)

    @event(Started)
    def __init__(self, kind: str, scope: str, shard: int, shards: int, capacity: int) -> None:
        self.kind = kind
        self.scope = scope
        self.shard = shard
        self.shards = shards
        self.capacity = capacity
        self.taken = 0  # how many numbers this shard has handed out

    def peek(self, skip: int = 0) -> int | None:
        n = self.shard + (self.taken + skip) * self.shards
        return n if n < self.capacity else None

    class Taken(Event):
        TOPIC = "backline.IdentifierSequence.Taken"
        count: int
        last: int

    @event(Taken)
    def _taken(self, count: int, last: int) -> None:
        self.taken += count

    def take(self, count: int) -> None:
        """Mark the next ``count`` numbers as used (the caller peeked them)."""
        if count <= 0:
            return
        last = self.peek(count - 1)
        if last is None:
            raise SequenceExhausted(
                f"No {self.kind} numbers are left for {self.scope} (shard {self.shard}).",
                kind=self.kind,
            )
        self._taken(count=count, last=last)


class IdentifierClaim(Aggregate):
    """Claims one ISRC or UPC for an account (and, for a UPC, for one release)."""

    TOPIC = "backline.IdentifierClaim"

    class Created(Aggregate.Created):
        TOPIC = "backline.IdentifierClaim.Created"

    class Event(Aggregate.Event):
        pass

    class Claimed(Created):
        TOPIC = "backline.IdentifierClaim.Claimed"
        kind: str
        value: str
        owner_id: UUID
        release_id: UUID
        assigned: bool

    @staticmethod
    def create_id(kind: str, value: str, **_: object) -> UUID:
        return claim_id(kind, value)

    @event(Claimed)
    def __init__(
        self, kind: str, value: str, owner_id: UUID, release_id: UUID, assigned: bool
    ) -> None:
        self.kind = kind
        self.value = value
        self.owner_id = owner_id
        self.release_id = release_id
        self.assigned = assigned

    def ensure_usable_by(self, owner_id: UUID, release_id: UUID, field: str) -> None:
        """An ISRC is reusable by its owner; a UPC only by its own release."""
        if self.owner_id != owner_id:
            raise Conflict(
                f"{field} {self.value} belongs to another account.",
                code=f"{self.kind}_taken",
                field=field,
            )
        if self.kind == "upc" and self.release_id != release_id:
            raise Conflict(
                f"{field} {self.value} is already used by another release.",
                code="upc_taken",
                field=field,
            )
