"""Pricing, credits, checkout and auto-reload tools (seeds 000/001)."""

from __future__ import annotations

import msgspec

from backline.api.credits import (
    AutoReloadOutput,
    CheckoutInput,
    CheckoutOutput,
    CreditsOutput,
    GetCreditsInput,
    PricingOutput,
    SetAutoReloadInput,
    autoreload_body,
    checkout_body,
    credits_body,
    pricing_body,
    set_autoreload_body,
)
from backline.api.mcp.registry import ToolContext, tool


class NoInput(msgspec.Struct):
    pass


@tool(
    "get_pricing",
    "The full price list: $1 per credit, per-song cost (1 credit human, 2 credits "
    "AI-detected), the Token Offset add-on, every discounted bundle with its packageId, "
    "and how auto-reload works.",
    input=NoInput,
    output=PricingOutput,
    read_only=True,
)
def get_pricing(ctx: ToolContext, args: NoInput) -> PricingOutput:
    ctx.require_principal()
    return pricing_body()


@tool(
    "get_credits",
    "The credit balance, lifetime aggregates (usedTotal, purchasedTotal) and recent "
    "transactions (transactionLimit 0-100, default 10).",
    input=GetCreditsInput,
    output=CreditsOutput,
    read_only=True,
)
def get_credits(ctx: ToolContext, args: GetCreditsInput) -> CreditsOutput:
    principal = ctx.require_principal()
    return credits_body(ctx.services, principal.account_id, args.transactionLimit)


@tool(
    "create_credit_checkout_session",
    "Create a Stripe Checkout session to buy credits: credits (integer 1-1000, $1 each) or "
    "packageId (a discounted bundle). uiMode 'embedded' (default) returns clientSecret and "
    "publishableKey; 'hosted' returns a payable url. savePaymentMethod: true keeps the card "
    "for auto-reload. successPath defaults to the AIMD checkout return endpoint.",
    input=CheckoutInput,
    output=CheckoutOutput,
)
def create_credit_checkout_session(ctx: ToolContext, args: CheckoutInput) -> CheckoutOutput:
    principal = ctx.require_principal()
    provenance = "AIMD" if args.provenance == "AIMD" or ctx.provenance == "AIMD" else "MCP"
    return checkout_body(
        ctx.services,
        principal.account_id,
        args,
        provenance=provenance,
        source="aimd" if provenance == "AIMD" else "mcp",
    )


@tool(
    "get_autoreload",
    "The auto-reload configuration: enabled, reload amount (packageId or quantity), "
    "threshold, saved card and last status.",
    input=NoInput,
    output=AutoReloadOutput,
    read_only=True,
)
def get_autoreload(ctx: ToolContext, args: NoInput) -> AutoReloadOutput:
    principal = ctx.require_principal()
    return autoreload_body(ctx.services, principal.account_id)


@tool(
    "set_autoreload",
    "Enable, disable or reconfigure auto-reload. Choose the reload amount with packageId "
    "(a bundle) or quantity (1-1000 credits); threshold 0-1000 (default 0). Enabling needs "
    "a saved card: paymentMethodId, or omit it to reuse the most recent saved card.",
    input=SetAutoReloadInput,
    output=AutoReloadOutput,
)
def set_autoreload(ctx: ToolContext, args: SetAutoReloadInput) -> AutoReloadOutput:
    principal = ctx.require_principal()
    return set_autoreload_body(ctx.services, principal.account_id, args)
