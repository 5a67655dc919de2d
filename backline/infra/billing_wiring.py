"""Wiring of credits and payments (issue 5): the payments adapter, services, process manager.

Stripe when ``BACKLINE_STRIPE_SECRET_KEY`` is set; otherwise the offline ``sandbox``
provider (refused in production mode).
"""

from __future__ import annotations

from typing import Any

import structlog

from backline.adapters.sandbox_payments import SandboxPayments, sandbox_webhook_secret
from backline.application.autoreload import AutoReloadManager
from backline.application.billing import BillingService
from backline.application.credits import CreditService
from backline.application.payments import Payments
from backline.application.store import EventStore
from backline.infra.settings import Settings
from backline.projections.credits import CreditQueries, KvPositionStore
from backline.projections.db import ReadStore
from backline.projections.kv import KeyValueTable

log = structlog.get_logger(__name__)


def build_payments(
    settings: Settings, kv: KeyValueTable
) -> tuple[Payments, SandboxPayments | None]:
    b = settings.billing
    if b.use_stripe:
        from backline.adapters.stripe_payments import StripePayments

        return (
            StripePayments(
                b.stripe_secret_key,
                publishable_key=b.stripe_publishable_key,
                webhook_secret=b.stripe_webhook_secret,
                api_base=b.stripe_api_base or None,
            ),
            None,
        )
    if settings.production:
        log.warning("payments_sandbox_refused_in_production")
    sandbox = SandboxPayments(
        kv,
        public_url=settings.public_url,
        webhook_secret=sandbox_webhook_secret(settings.secret_key),
        production=settings.production,
    )
    return sandbox, sandbox


def billing_services(
    settings: Settings, store: EventStore, read: ReadStore, kv: KeyValueTable
) -> dict[str, Any]:
    """The Container's credit/billing attributes, as keyword arguments."""
    payments, sandbox = build_payments(settings, kv)
    credits = CreditService(store)
    billing = BillingService(
        store,
        credits,
        payments,
        public_url=settings.public_url,
        checkout_return_url=settings.billing.checkout_return_url,
    )
    return {
        "credits": credits,
        "billing": billing,
        "credit_queries": CreditQueries(read),
        "sandbox_payments": sandbox,
        "autoreload": AutoReloadManager(store, billing, KvPositionStore(kv)),
    }
