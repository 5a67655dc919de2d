"""The price list: credits, per-song costs, token offset, bundles, auto-reload limits.

All money is in integer cents (USD); all credits are integers. Billing is the same on
every surface (seed 000 stands over 001): 1 credit per human song, 2 per AI-detected
song; provenance is recorded for analytics only.

Bundle prices (chosen here; the seeds only name ``credits_10`` … ``credits_500``): the
discount grows with the bundle, in whole cents, and every bundle is cheaper per credit
than the one before it.

| packageId     | credits | price    | discount |
|---------------|---------|----------|----------|
| credits_10    | 10      | $10.00   | 0 %      |
| credits_25    | 25      | $23.75   | 5 %      |
| credits_50    | 50      | $45.00   | 10 %     |
| credits_100   | 100     | $85.00   | 15 %     |
| credits_250   | 250     | $200.00  | 20 %     |
| credits_500   | 500     | $375.00  | 25 %     |
"""

from __future__ import annotations

from dataclasses import dataclass

from backline.domain.errors import ValidationFailed

CURRENCY = "usd"
CREDIT_PRICE_CENTS = 100  # $1 per credit
HUMAN_SONG_CREDITS = 1
AI_SONG_CREDITS = 2
TOKEN_OFFSET_CREDITS = 1
MIN_CUSTOM_CREDITS = 1
MAX_CUSTOM_CREDITS = 1000
MIN_RELOAD_THRESHOLD = 0
MAX_RELOAD_THRESHOLD = 1000
DEFAULT_RELOAD_THRESHOLD = 0


@dataclass(frozen=True)
class Bundle:
    package_id: str
    credits: int
    price_cents: int

    @property
    def list_price_cents(self) -> int:
        return self.credits * CREDIT_PRICE_CENTS

    @property
    def discount_percent(self) -> int:
        return (self.list_price_cents - self.price_cents) * 100 // self.list_price_cents


BUNDLES: tuple[Bundle, ...] = (
    Bundle("credits_10", 10, 1_000),
    Bundle("credits_25", 25, 2_375),
    Bundle("credits_50", 50, 4_500),
    Bundle("credits_100", 100, 8_500),
    Bundle("credits_250", 250, 20_000),
    Bundle("credits_500", 500, 37_500),
)
_BY_ID = {b.package_id: b for b in BUNDLES}


@dataclass(frozen=True)
class Quote:
    """What a purchase of credits costs: a custom amount or a bundle."""

    credits: int
    amount_cents: int
    package_id: str | None = None

    @property
    def currency(self) -> str:
        return CURRENCY


def bundle(package_id: str) -> Bundle:
    found = _BY_ID.get(package_id) if isinstance(package_id, str) else None
    if found is None:
        raise ValidationFailed(
            f"Unknown packageId {package_id!r}; known: {', '.join(_BY_ID)}.",
            code="unknown_package",
            field="packageId",
        )
    return found


def check_whole(value: object, field: str, low: int, high: int, *, code: str) -> int:
    """An integer (not a bool, not a float) within ``[low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(f"{field} must be an integer.", code=code, field=field)
    if not low <= value <= high:
        raise ValidationFailed(f"{field} must be between {low} and {high}.", code=code, field=field)
    return value


def quote(credits: object = None, package_id: str | None = None) -> Quote:
    """Price ``credits`` custom credits at $1 each, or the bundle ``package_id``."""
    if package_id is not None and credits is not None:
        raise ValidationFailed(
            "Pass either credits or packageId, not both.", code="invalid_credits", field="credits"
        )
    if package_id is not None:
        b = bundle(package_id)
        return Quote(credits=b.credits, amount_cents=b.price_cents, package_id=b.package_id)
    if credits is None:
        raise ValidationFailed(
            "credits (1-1000) or packageId is required.", code="invalid_credits", field="credits"
        )
    n = check_whole(
        credits, "credits", MIN_CUSTOM_CREDITS, MAX_CUSTOM_CREDITS, code="invalid_credits"
    )
    return Quote(credits=n, amount_cents=n * CREDIT_PRICE_CENTS)


def release_cost(human_songs: int, ai_songs: int, *, token_offset: bool = False) -> int:
    """Credits a release costs: 1 per human song, 2 per AI-detected song, +1 token offset."""
    if human_songs < 0 or ai_songs < 0:
        raise ValidationFailed("Song counts cannot be negative.", code="invalid_tracks")
    cost = human_songs * HUMAN_SONG_CREDITS + ai_songs * AI_SONG_CREDITS
    return cost + (TOKEN_OFFSET_CREDITS if token_offset else 0)


def cents_display(cents: int) -> str:
    return f"${cents // 100}.{cents % 100:02d}"
