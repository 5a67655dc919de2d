"""Pricing, credits, checkout, auto-reload, Stripe webhook and the sandbox checkout page.

One set of msgspec Structs serves the REST routes and the MCP tools that mirror them
(``backline/api/mcp/tools/credits.py``); the ``*_body`` functions are the shared,
synchronous implementations both call.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import msgspec
import structlog
from litestar import Controller, MediaType, Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER, HTTP_400_BAD_REQUEST

from backline.api.auth import require_principal, services
from backline.api.deps import Services
from backline.api.errors import render
from backline.api.forms import in_thread, read_fields
from backline.api.profile import iso_ms
from backline.application.billing import autoreload_view
from backline.application.payments import InvalidWebhook
from backline.domain.credits import transaction_id
from backline.domain.errors import NotFound, ValidationFailed
from backline.domain.pricing import (
    AI_SONG_CREDITS,
    BUNDLES,
    CREDIT_PRICE_CENTS,
    CURRENCY,
    DEFAULT_RELOAD_THRESHOLD,
    HUMAN_SONG_CREDITS,
    MAX_CUSTOM_CREDITS,
    MAX_RELOAD_THRESHOLD,
    MIN_CUSTOM_CREDITS,
    MIN_RELOAD_THRESHOLD,
    TOKEN_OFFSET_CREDITS,
    cents_display,
)

log = structlog.get_logger(__name__)

MAX_TRANSACTION_LIMIT = 100
DEFAULT_TRANSACTION_LIMIT = 10

# -- pricing ---------------------------------------------------------------------------------


class PricingBundle(msgspec.Struct):
    packageId: str
    credits: int
    price: int
    priceDisplay: str
    pricePerCredit: int
    discountPercent: int


class PerSong(msgspec.Struct):
    human: int
    aiDetected: int
    note: str


class TokenOffsetPrice(msgspec.Struct):
    credits: int
    price: int
    description: str
    ref: str


class CreditRange(msgspec.Struct):
    min: int
    max: int


class AutoReloadPricing(msgspec.Struct):
    description: str
    defaultThreshold: int
    threshold: CreditRange
    quantity: CreditRange
    packageIds: list[str]
    setup: str


class PricingOutput(msgspec.Struct):
    currency: str
    creditPrice: int
    creditPriceDisplay: str
    perSong: PerSong
    tokenOffset: TokenOffsetPrice
    customCredits: CreditRange
    bundles: list[PricingBundle]
    autoReload: AutoReloadPricing


def pricing_body() -> PricingOutput:
    return PricingOutput(
        currency=CURRENCY,
        creditPrice=CREDIT_PRICE_CENTS,
        creditPriceDisplay=cents_display(CREDIT_PRICE_CENTS),
        perSong=PerSong(
            human=HUMAN_SONG_CREDITS,
            aiDetected=AI_SONG_CREDITS,
            note="Billing is the same on every surface (MCP and AIMD); provenance is recorded "
            "for analytics only.",
        ),
        tokenOffset=TokenOffsetPrice(
            credits=TOKEN_OFFSET_CREDITS,
            price=TOKEN_OFFSET_CREDITS * CREDIT_PRICE_CENTS,
            description="Optional flat +1 credit per release (tokenOffset: true) that funds "
            "tokenoffset.com to offset the AI environmental cost of the release.",
            ref="token_offset:<release_id>",
        ),
        customCredits=CreditRange(min=MIN_CUSTOM_CREDITS, max=MAX_CUSTOM_CREDITS),
        bundles=[
            PricingBundle(
                packageId=b.package_id,
                credits=b.credits,
                price=b.price_cents,
                priceDisplay=cents_display(b.price_cents),
                pricePerCredit=b.price_cents // b.credits,
                discountPercent=b.discount_percent,
            )
            for b in BUNDLES
        ],
        autoReload=AutoReloadPricing(
            description="Auto-reload charges your saved card off-session whenever your "
            "balance falls to the threshold, once per drop, and adds the reload amount "
            "(a bundle by packageId or a custom quantity at $1/credit). A declined card or "
            "one that needs authentication pauses auto-reload until you set it again.",
            defaultThreshold=DEFAULT_RELOAD_THRESHOLD,
            threshold=CreditRange(min=MIN_RELOAD_THRESHOLD, max=MAX_RELOAD_THRESHOLD),
            quantity=CreditRange(min=MIN_CUSTOM_CREDITS, max=MAX_CUSTOM_CREDITS),
            packageIds=[b.package_id for b in BUNDLES],
            setup="Call create_credit_checkout_session with savePaymentMethod: true, then "
            'set_autoreload with {"enabled": true, "packageId": "credits_100"}.',
        ),
    )


# -- credits ---------------------------------------------------------------------------------


class CreditTransaction(msgspec.Struct):
    id: str
    type: str
    amount: int
    balance_after: int
    created_at: str
    ref: str


class CreditAggregates(msgspec.Struct):
    usedTotal: int
    purchasedTotal: int


class CreditsOutput(msgspec.Struct):
    balance: int
    updatedAt: str | None
    transactions: list[CreditTransaction]
    aggregates: CreditAggregates


class GetCreditsInput(msgspec.Struct, kw_only=True):
    transactionLimit: int = DEFAULT_TRANSACTION_LIMIT


def check_transaction_limit(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(
            "transactionLimit must be an integer from 0 to 100.",
            code="invalid_transaction_limit",
            field="transactionLimit",
        )
    if not 0 <= value <= MAX_TRANSACTION_LIMIT:
        raise ValidationFailed(
            "transactionLimit must be between 0 and 100.",
            code="invalid_transaction_limit",
            field="transactionLimit",
        )
    return value


def credits_body(svc: Services, account_id: UUID, transaction_limit: object) -> CreditsOutput:
    limit = check_transaction_limit(transaction_limit)
    # Read-your-writes: let the credit history catch up with what is committed now.
    svc.runner.wait_for(svc.credits.store.max_position(), ["credit_history"], timeout=3.0)
    row = svc.credit_queries.balance_row(account_id)
    rows = svc.credit_queries.transactions(account_id, limit) if row is not None else []
    return CreditsOutput(
        balance=int(row["balance"]) if row else 0,
        updatedAt=iso_ms(row["updated_at"]) if row else None,
        transactions=[
            CreditTransaction(
                id=str(transaction_id(UUID(r["ledger_id"]), int(r["version"]))),
                type=r["type"],
                amount=int(r["amount"]),
                balance_after=int(r["balance_after"]),
                created_at=iso_ms(r["created_at"]),
                ref=r["ref"],
            )
            for r in rows
        ],
        aggregates=CreditAggregates(
            usedTotal=int(row["used_total"]) if row else 0,
            purchasedTotal=int(row["purchased_total"]) if row else 0,
        ),
    )


# -- checkout --------------------------------------------------------------------------------


class CheckoutInput(msgspec.Struct, kw_only=True):
    credits: int | None = None
    packageId: str | None = None
    uiMode: Literal["hosted", "embedded"] = "embedded"
    savePaymentMethod: bool = False
    successPath: str | None = None
    provenance: str | None = None


class CheckoutOutput(msgspec.Struct, kw_only=True, omit_defaults=True):
    sessionId: str
    amount: int
    currency: str
    credits: int
    expiresAt: str
    provider: str
    uiMode: str
    clientSecret: str | None = None
    publishableKey: str | None = None
    url: str | None = None
    packageId: str | None = None


def checkout_body(
    svc: Services, account_id: UUID, args: CheckoutInput, *, provenance: str, source: str | None
) -> CheckoutOutput:
    created = svc.billing.create_checkout(
        account_id,
        credits=args.credits,
        package_id=args.packageId,
        ui_mode=args.uiMode,
        save_payment_method=args.savePaymentMethod,
        success_path=args.successPath,
        provenance=provenance,
        source=source,
    )
    s = created.session
    return CheckoutOutput(
        sessionId=s.id,
        amount=s.amount_total,
        currency=s.currency,
        credits=created.quote.credits,
        expiresAt=iso_ms(s.expires_at),
        provider=s.provider,
        uiMode=args.uiMode,
        clientSecret=s.client_secret,
        publishableKey=s.publishable_key if args.uiMode == "embedded" else None,
        url=s.url,
        packageId=created.quote.package_id,
    )


# -- auto-reload -----------------------------------------------------------------------------


class SavedCardOut(msgspec.Struct):
    id: str
    brand: str
    last4: str
    expMonth: int
    expYear: int


class AutoReloadOutput(msgspec.Struct):
    enabled: bool
    packageId: str | None
    quantity: int | None
    credits: int | None
    amount: int | None
    currency: str
    threshold: int
    paymentMethod: SavedCardOut | None
    savedCards: list[SavedCardOut]
    suspended: bool
    lastStatus: dict[str, str] | None
    provider: str


class SetAutoReloadInput(msgspec.Struct, kw_only=True):
    enabled: bool | None = None
    packageId: str | None = None
    quantity: int | None = None
    threshold: int | None = None
    paymentMethodId: str | None = None


def autoreload_body(svc: Services, account_id: UUID) -> AutoReloadOutput:
    view = autoreload_view(svc.billing.profile(account_id))
    view["provider"] = svc.billing.provider
    return msgspec.convert(view, AutoReloadOutput)


def set_autoreload_body(
    svc: Services, account_id: UUID, args: SetAutoReloadInput
) -> AutoReloadOutput:
    svc.billing.set_autoreload(
        account_id,
        enabled=args.enabled,
        package_id=args.packageId,
        quantity=args.quantity,
        threshold=args.threshold,
        payment_method_id=args.paymentMethodId,
    )
    return autoreload_body(svc, account_id)


def _decode_json(body: bytes, type_: type[Any]) -> Any:
    try:
        return msgspec.json.decode(body or b"{}", type=type_)
    except msgspec.ValidationError as e:
        raise ValidationFailed(f"Invalid request: {e}", code="invalid_request") from None
    except msgspec.DecodeError:
        raise ValidationFailed("Body is not valid JSON.", code="invalid_json") from None


# -- REST --------------------------------------------------------------------------------------


class CreditsController(Controller):
    tags = ["Credits"]

    @get("/v1/pricing", summary="The price list: credits, per-song costs, bundles, auto-reload")
    async def pricing(self) -> PricingOutput:
        return pricing_body()

    @get("/api/credits", summary="Balance, lifetime aggregates and recent transactions")
    async def credits(
        self, request: Request[Any, Any, Any], transactionLimit: FromQuery[int] = 10
    ) -> CreditsOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(
            credits_body, services(request), principal.account_id, transactionLimit
        )

    @get("/v1/me/autoreload", summary="Auto-reload configuration and last status")
    async def get_autoreload(self, request: Request[Any, Any, Any]) -> AutoReloadOutput:
        principal = await in_thread(require_principal, request)
        return await in_thread(autoreload_body, services(request), principal.account_id)

    @post(
        "/v1/me/autoreload", summary="Enable, disable or reconfigure auto-reload", status_code=200
    )
    async def set_autoreload(self, request: Request[Any, Any, Any]) -> AutoReloadOutput:
        principal = await in_thread(require_principal, request)
        args = _decode_json(await request.body(), SetAutoReloadInput)
        return await in_thread(set_autoreload_body, services(request), principal.account_id, args)

    @post("/api/stripe/webhook", summary="Stripe webhook (signature verified)", status_code=200)
    async def stripe_webhook(self, request: Request[Any, Any, Any]) -> Response[Any]:
        payload = await request.body()
        signature = request.headers.get("stripe-signature", "")
        try:
            outcome = await in_thread(services(request).billing.handle_webhook, payload, signature)
        except InvalidWebhook as e:
            log.warning("stripe_webhook_rejected", reason=str(e)[:200])
            return render(
                request,
                HTTP_400_BAD_REQUEST,
                "invalid_signature",
                "The Stripe-Signature header does not verify.",
            )
        return Response(
            {"received": True, "type": outcome.type, "outcome": outcome.outcome},
            status_code=HTTP_200_OK,
            media_type=MediaType.JSON,
        )


class SandboxCheckoutController(Controller):
    """The offline payments default's hosted page (``sandbox``; refused in production)."""

    path = "/sandbox/checkout"
    tags = ["Sandbox payments"]
    include_in_schema = False

    @get("/{session_id:str}", summary="Sandbox hosted checkout page")
    async def page(self, request: Request[Any, Any, Any], session_id: FromPath[str]) -> Template:
        svc = services(request)
        session = await in_thread(_sandbox(svc).session, session_id)
        return Template(
            template_name="sandbox_checkout.html",
            context={
                "title": "Sandbox checkout",
                "session": session,
                "amount": cents_display(int(session["amount_total"])),
                "error": None,
                "notice": None,
                "signed_in": False,
            },
        )

    @post("/{session_id:str}", summary="Pay a sandbox session with a test card")
    async def complete(
        self, request: Request[Any, Any, Any], session_id: FromPath[str]
    ) -> Response[Any]:
        svc = services(request)
        fields = await read_fields(request, {"card"})

        def run() -> tuple[str, str]:
            payload, signature, return_url = _sandbox(svc).complete(
                session_id, fields.get("card", "visa")
            )
            # Exactly the webhook path: verify the signature, then apply the event.
            outcome = svc.billing.handle_webhook(payload, signature)
            return return_url, outcome.outcome

        return_url, outcome = await in_thread(run)
        if "application/json" in request.headers.get("accept", ""):
            return Response(
                {
                    "status": "complete",
                    "sessionId": session_id,
                    "outcome": outcome,
                    "returnUrl": return_url,
                    "provider": "sandbox",
                },
                media_type=MediaType.JSON,
            )
        return Redirect(return_url, status_code=HTTP_303_SEE_OTHER)


def _sandbox(svc: Services) -> Any:
    sandbox = svc.sandbox_payments
    if sandbox is None:  # Stripe is configured: there is no sandbox page
        raise NotFound("Not found.", code="not_found")
    return sandbox
